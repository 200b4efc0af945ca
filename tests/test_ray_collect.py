"""Collection on a real local Ray (2 CPUs) with the tiny random model: the same trees as a local run."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import llama_server
from coursecorrect.config import validate_config
from coursecorrect.errors import CourseCorrectError
from coursecorrect.search import CollectConfig, collect, tree_path
from test_search_collect import _cli

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONFIG = {
    "env": {"name": "textcraft", "max_steps": 20},
    "model": {"model": "tiny-random", "device": "cpu", "dtype": "float32"},
    "mcts": {
        "iterations": 2, "n_children": 2, "rollouts": 2, "max_depth": 4, "max_new_tokens": 16, "temperature": 1.0,
        "max_context_tokens": 1024, "seed": 3,
    },
    "limit": 8,
}


def test_a_missing_ray_package_or_an_unreachable_address_fails_clearly(monkeypatch, tmp_path):
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
        with pytest.raises(CourseCorrectError, match=r"pip install 'coursecorrect\[ray\]'"):
            collect(validate_config(CollectConfig, {**CONFIG, "ray": {}}), tmp_path / "a", progress=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    address = f"127.0.0.1:{llama_server.free_port()}"
    result = CliRunner().invoke(_cli(), [
        "collect", "--limit", "1", "--model", "tiny-random", "--out", str(tmp_path / "b"), "--no-progress",
        "--ray-address", address, "--ray-workers", "2",
    ])
    assert isinstance(result.exception, CourseCorrectError)
    assert str(result.exception) == f"cannot connect to Ray at {address!r}: Connection refused"
    with pytest.raises(CourseCorrectError, match="not a Ray address"):
        nowhere = validate_config(CollectConfig, {**CONFIG, "ray": {"address": "nowhere"}})
        collect(nowhere, tmp_path / "c", progress=False)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "trees").iterdir())}


def test_ray_collection_gives_the_trees_of_a_local_run_and_resumes(local_ray, tmp_path):
    local = collect(validate_config(CollectConfig, CONFIG), tmp_path / "local", progress=False)
    on_ray = collect(validate_config(CollectConfig, {**CONFIG, "ray": {}}), tmp_path / "ray", progress=False)
    assert len(_files(tmp_path / "ray")) == 8
    assert _files(tmp_path / "ray") == _files(tmp_path / "local"), "byte-identical tree files"
    totals = ["trees_this_run", "nodes_this_run", "generations_this_run", "completion_tokens_this_run"]
    assert [on_ray[k] for k in totals] == [local[k] for k in totals]
    assert on_ray["backend_calls_this_run"] >= local["backend_calls_this_run"], "two workers, each with its calls"
    # A folder started locally is resumed on Ray: only the missing trees are searched, to the same files.
    for task_id in (31, 34, 38):
        tree_path(tmp_path / "local", task_id).unlink()
    resumed = collect(
        validate_config(CollectConfig, {**CONFIG, "ray": {"workers": 1}}), tmp_path / "local", progress=False
    )
    assert resumed["trees_this_run"] == 3 and resumed["trees"] == 8
    assert _files(tmp_path / "local") == _files(tmp_path / "ray")
    assert ray.is_initialized(), "a Ray initialised by the caller is left running"
