"""The tree viewer: terminal rendering, escaped self-contained HTML, and the page opened in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

import pytest
from rich.console import Console

from coursecorrect.agent import episode_start
from coursecorrect.search import MCTSConfig, Node, Tree, search_trees
from coursecorrect.search.viewer import render_tree, tree_html
from search_doubles import PolicyLLM, WalkEnv, hashed_policy

CHROMIUM = os.environ.get("COURSECORRECT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRE_CHROMIUM = os.environ.get("COURSECORRECT_REQUIRE_CHROMIUM") == "1"


def _tree() -> Tree:
    choices = ["Action: right", "Action: left", "Action: fall", "Thought: hmm <b>bold</b> & co"]
    config = MCTSConfig(variant="paper", iterations=4, n_children=3, rollouts=2, max_depth=4, seed=2)
    (tree,) = search_trees(WalkEnv, PolicyLLM(hashed_policy(choices)), [1], config)
    return tree


def _nasty_tree() -> Tree:
    tree = Tree.new("walk", 0, episode_start("Walk <now>.", "You are at 0 & </pre>."))
    tree.root.add(Node(1, "Action: <script>alert(1)</script>", "<script>alert(1)</script>", "Unknown </details>", 1,
                       visits=1, terminal=True, done=True))
    tree.root.add(Node(2, "Action: right", "right", "You reached [bold]2[/bold]!", 1, visits=1, value=1.0,
                       reward=1.0, score=1.0, terminal=True, done=True))
    tree.root.visits, tree.root.value = 2, 1.0
    return tree


def test_terminal_rendering_shows_every_node_and_escapes_markup():
    tree = _tree()
    console = Console(record=True, width=200, color_system=None)
    console.print(render_tree(tree))
    text = console.export_text()
    assert "walk task 1" in text and text.count("#") >= sum(1 for _ in tree.nodes())
    console = Console(record=True, width=200, color_system=None)
    console.print(render_tree(_nasty_tree()))
    text = console.export_text()
    assert "[bold]2[/bold]" in text, "env text is shown literally, not read as rich markup"
    assert "score=1" in text and "score=0" in text
    console = Console(record=True, width=200, color_system=None)
    console.print(render_tree(tree, max_depth=1))
    assert "more nodes" in console.export_text()


def test_html_is_escaped_and_marks_good_and_bad_leaves():
    page = tree_html(_nasty_tree())
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Unknown &lt;/details&gt;" in page and "You are at 0 &amp; &lt;/pre&gt;." in page
    assert re.search(r'class="node leaf good[^"]*" data-node="2"', page)
    assert re.search(r'class="node leaf bad[^"]*" data-node="1"', page)
    assert "http" not in page.replace("charset=utf-8", ""), "self-contained: no external resources"
    tree = _tree()
    page = tree_html(tree)
    assert page.count("data-node=") == sum(1 for _ in tree.nodes())
    assert page.count("<details") - 3 == sum(1 for _ in tree.nodes()), "one <details> per node (+3 task messages)"
    shallow = tree_html(tree, max_depth=1)
    assert shallow.count("data-node=") == 1 + len(tree.root.children)


def _dump_dom(page) -> str:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.skipif(
    CHROMIUM is None and not REQUIRE_CHROMIUM,
    reason="headless Chromium not installed (apt-get install -y chromium; CI sets COURSECORRECT_REQUIRE_CHROMIUM=1)",
)
def test_html_renders_in_headless_chromium(tmp_path):
    assert CHROMIUM is not None, "COURSECORRECT_REQUIRE_CHROMIUM=1 but no chromium on PATH"
    tree = _tree()
    tree.root.children[0].response = "Thought: <img src=x onerror=\"document.title='pwned'\">"
    page = tmp_path / "tree.html"
    page.write_text(tree_html(tree), encoding="utf-8")
    dom = _dump_dom(page)
    nodes = sum(1 for _ in tree.nodes())
    assert f'<span id="count">{nodes} nodes rendered</span>' in dom, "the inline script ran over every node"
    assert dom.count("data-node=") == nodes
    assert "<title>walk task 1</title>" in dom and "pwned" not in dom.split("</title>")[0]
    assert "<img" not in dom, "model text stays text"
