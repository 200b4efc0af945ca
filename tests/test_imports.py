"""The package's layering, computed from its imports: no cycle between files, none between subpackages, no stage
package imports the orchestrator (``coursecorrect.pipeline``), and every import goes down the layers of
:data:`LAYERS`.

The graph is read from the source's AST, not from ``sys.modules``, so it sees every import a file can run:

- module-level imports, imports inside functions (lazy ones) and imports under ``if TYPE_CHECKING:`` all count.
  Counting the type-only ones is the stricter choice: a type a module names is a dependency its reader follows,
  and a cycle through annotations is a cycle in the design even when Python never runs it.
- ``from a.b import c`` is an edge to ``a.b.c`` when that is a module of the package, else to ``a.b``.
- an edge goes to the module named, not to the packages above it: ``import coursecorrect.llm.base`` runs
  ``llm/__init__.py`` too, but a sibling import inside a package whose ``__init__`` re-exports its modules is
  the ordinary layout of a package, not a cycle.
- names given as strings (the registries' ``"module:Class"`` targets) are not imports.

In the subpackage graph each subpackage of ``coursecorrect`` is one node, each module at the root (``errors``,
``config``, ``rundir``, …) is a node of its own, the root ``__init__`` is ``coursecorrect``, and ``cli`` (a package)
is one node.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = "coursecorrect"
SOURCE = Path(__file__).resolve().parents[1] / "src" / PACKAGE
STAGES = ("envs", "llm", "data", "agent", "search", "revision", "train", "eval", "rise")
LAYERS = (
    ("envs", "llm", "data"),  # what the stages are made of: environments, model backends, records and their files
    ("agent",),  # an agent playing an env with a model
    ("search", "revision", "train"),  # Agent-R's stages: trees, the data built from them, training on data
    ("eval",),  # measuring a model (and a critic) on an env
    ("rise", "pipeline"),  # the two methods' runs, side by side
    ("cli",),  # the command line, above everything
)
"""The house, bottom to top, above the ground floor (the modules at the package's root: ``errors``, ``config``,
``io``, ``text``, ``registry``, ``console``, ``rundir``, and ``coursecorrect`` itself). A subpackage imports only
the ground floor and subpackages of lower layers (not its neighbours on its own layer); a ground-floor module
imports only the ground floor."""

Graph = dict[str, set[str]]


def module_names(root: Path = SOURCE) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its name, for its ``__init__.py``)."""
    names: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = (PACKAGE, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> Iterator[str]:
    """The dotted names an import statement in ``module`` names: for ``from base import a, b``, ``base.a``,
    ``base.b`` and then ``base`` itself (relative imports resolved)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        here = module.split(".") if is_package else module.split(".")[:-1]
        here = here[: len(here) - (node.level - 1)]
        base = ".".join([*here, base] if base else here)
    for alias in node.names:
        yield f"{base}.{alias.name}"
    yield base


def import_graph(root: Path = SOURCE) -> Graph:
    """Each module of the package → the modules of the package it imports (itself excluded)."""
    modules = module_names(root)
    graph: Graph = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            candidates = list(_imported(node, name, path.name == "__init__.py"))
            if isinstance(node, ast.ImportFrom):
                *names, base = candidates
                targets = [n for n in names if n in modules]
                if len(targets) < len(names) and base in modules:
                    targets.append(base)  # the other names are attributes of ``base`` (or its re-exports)
            else:
                targets = [c for c in candidates if c in modules]
            graph[name].update(t for t in targets if t != name)
    return graph


def group(module: str) -> str:
    """The subpackage-graph node of a module: its subpackage, or itself when it lies at the root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else PACKAGE


def subpackage_graph(graph: Graph) -> Graph:
    groups: Graph = {}
    for module, targets in graph.items():
        groups.setdefault(group(module), set()).update(group(t) for t in targets if group(t) != group(module))
    return groups


def ground_floor(root: Path = SOURCE) -> set[str]:
    """The subpackage-graph nodes of the package's root: its plain modules (``cli`` aside) and its ``__init__``."""
    modules = module_names(root)
    plain = {group(name) for name, path in modules.items() if path.parent == root and path.name != "__init__.py"}
    return (plain | {PACKAGE}) - {"cli"}


def find_cycle(graph: Graph) -> list[str] | None:
    """A cycle of ``graph`` as ``[a, b, ..., a]`` where each node imports the one before it, or None."""
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        return list(error.args[1])
    return None


def explain(cycle: list[str], graph: Graph, node_of: Callable[[str], str] = lambda m: m) -> str:
    """Each edge of a cycle with the file-level imports that make it."""
    lines = []
    for before, after in zip(cycle, cycle[1:], strict=False):
        made_by = sorted(
            f"{m} -> {t}" for m, ts in graph.items() for t in ts if node_of(m) == after and node_of(t) == before
        )
        lines.append(f"  {after} imports {before}: {', '.join(made_by)}")
    return "\n".join(lines)


def test_no_cycle_between_files() -> None:
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between files:\n" + explain(cycle, graph)


def test_no_cycle_between_subpackages() -> None:
    graph = import_graph()
    cycle = find_cycle(subpackage_graph(graph))
    assert cycle is None, "import cycle between subpackages:\n" + explain(cycle, graph, group)


@pytest.mark.parametrize("stage", STAGES)
def test_no_stage_imports_the_pipeline(stage: str) -> None:
    graph = import_graph()
    upward = sorted(f"{m} -> {t}" for m, ts in graph.items() if group(m) == stage for t in ts if group(t) == "pipeline")
    assert not upward, f"{stage} imports the pipeline: {', '.join(upward)}"


def test_each_import_goes_down_the_layers() -> None:
    graph = import_graph()
    layer = {node: i for i, nodes in enumerate(LAYERS) for node in nodes} | dict.fromkeys(ground_floor(), -1)
    unplaced = set(subpackage_graph(graph)) - set(layer)
    assert not unplaced, f"subpackages missing from LAYERS: {sorted(unplaced)}"
    upward = sorted(
        f"{m} -> {t}"
        for m, targets in graph.items()
        for t in targets
        if group(m) != group(t) and layer[group(t)] >= max(layer[group(m)], 0)
    )
    assert not upward, "imports that do not go down the layers:\n  " + "\n  ".join(upward)


def test_the_graph_sees_lazy_relative_and_type_only_imports(tmp_path: Path) -> None:
    """The scanner itself: a function-level import, a relative one, a TYPE_CHECKING one and ``from pkg import
    module`` each make an edge, and a name imported from a package is an edge to the package."""
    root = tmp_path / PACKAGE
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "__init__.py").write_text("")
    (root / "errors.py").write_text("import json\n")
    (root / "a" / "__init__.py").write_text("from .x import X\n")
    (root / "a" / "x.py").write_text("X = 1\ndef f():\n    from coursecorrect.b import y\n")
    (root / "a" / "z.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from coursecorrect.b.y import Y\n"
    )
    (root / "b" / "__init__.py").write_text("")
    (root / "b" / "y.py").write_text("from coursecorrect.a import X\nfrom .. import a, errors\n")
    graph = import_graph(root)
    assert graph == {
        "coursecorrect": set(),
        "coursecorrect.errors": set(),
        "coursecorrect.a": {"coursecorrect.a.x"},
        "coursecorrect.a.x": {"coursecorrect.b.y"},
        "coursecorrect.a.z": {"coursecorrect.b.y"},
        "coursecorrect.b": set(),
        "coursecorrect.b.y": {"coursecorrect.a", "coursecorrect.errors"},
    }
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1]
    assert set(cycle) == {"coursecorrect.a", "coursecorrect.a.x", "coursecorrect.b.y"}
    assert "coursecorrect.b.y imports coursecorrect.a: coursecorrect.b.y -> coursecorrect.a" in explain(
        ["coursecorrect.a", "coursecorrect.b.y", "coursecorrect.a.x", "coursecorrect.a"], graph
    )
    assert subpackage_graph(graph) == {"coursecorrect": set(), "errors": set(), "a": {"b"}, "b": {"a", "errors"}}
    assert ground_floor(root) == {"coursecorrect", "errors"}
