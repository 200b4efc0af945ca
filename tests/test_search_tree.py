"""Tree files: round trip, messages of any node, leaves and paths, stats on a hand-built tree."""

from __future__ import annotations

import json

import pytest

from coursecorrect.agent import NO_ACTION_OBSERVATION, episode_start
from coursecorrect.search import MCTSConfig, Node, Tree, TreeFileError, load_trees, search_trees, tree_path, tree_stats
from search_doubles import PolicyLLM, WalkEnv, hashed_policy


def _searched_tree(task_id=1):
    choices = ["Action: right", "Action: left", "Action: fall", "Thought: hmm", "right"]
    config = MCTSConfig(variant="paper", iterations=5, n_children=3, rollouts=2, max_depth=5, seed=1)
    (tree,) = search_trees(WalkEnv, PolicyLLM(hashed_policy(choices)), [task_id], config)
    return tree


def test_round_trip_is_exact(tmp_path):
    tree = _searched_tree()
    path = tree_path(tmp_path, tree.task_id)
    tree.save(path)
    assert path == tmp_path / "trees" / "task_1.json"
    loaded = Tree.load(path)
    assert loaded.to_dict() == tree.to_dict()
    assert json.loads(path.read_text())["root_messages"][1] == {"role": "assistant", "content": "Ok.", "loss": False}
    assert not list(path.parent.glob(".*.tmp")), "atomic write leaves no temp file"
    for node in loaded.nodes():
        assert all(child.parent is node for child in node.children)


def test_messages_of_any_leaf_replay_in_the_env(tmp_path):
    tree = _searched_tree()
    tree.save(tmp_path / "t.json")
    tree = Tree.load(tmp_path / "t.json")
    env = WalkEnv()
    for leaf in tree.leaves():
        messages = tree.messages(leaf)
        first = env.reset(tree.task_id)
        assert messages[:3] == episode_start(env.instruction, first)
        assert len(messages) == 3 + 2 * leaf.depth
        for step, (said, seen) in enumerate(zip(messages[3::2], messages[4::2], strict=True)):
            assert said.role == "assistant" and said.loss and seen.role == "user"
            node = leaf.path()[step + 1]
            assert said.content == node.response
            expected = NO_ACTION_OBSERVATION if node.action is None else env.step(node.action).observation
            assert seen.content == expected
        assert tree.actions(leaf) == [n.action for n in leaf.path()[1:]]


def test_leaves_paths_and_find():
    tree = _hand_built()
    assert [n.id for n in tree.leaves()] == [3, 4, 5, 2]
    assert [n.id for n in tree.terminal_leaves()] == [3, 4, 5]
    assert [n.id for n in tree.find(5).path()] == [0, 1, 5]
    assert [n.id for n in tree.nodes()] == [0, 1, 3, 4, 5, 2]
    with pytest.raises(KeyError):
        tree.find(99)


def _hand_built() -> Tree:
    tree = Tree.new("walk", 0, episode_start("Walk.", "You are at 0."))
    a = tree.root.add(Node(1, "Action: right", "right", "You are at 1.", 1, visits=3, value=1.0))
    b = tree.root.add(Node(2, "Thought: hm", None, NO_ACTION_OBSERVATION, 1))
    a.add(Node(3, "Action: right", "right", "You reached 2!", 2, visits=1, value=1.0, reward=1.0, score=1.0,
               done=True, terminal=True))
    a.add(Node(4, "Action: fall", "fall", "You fell.", 2, visits=1, value=0.0, done=True, terminal=True))
    a.add(Node(5, "Action: left", "left", "You are at 0.", 2, visits=1, terminal=True, rollout=True))
    tree.root.visits, tree.root.value = 3, 1.0
    assert b.is_leaf
    return tree


def test_stats_on_a_hand_built_tree():
    lonely = Tree.new("walk", 1, episode_start("Walk.", "You are at 0."))
    lonely.root.add(Node(1, "Action: fall", "fall", "You fell.", 1, visits=1, done=True, terminal=True))
    stats = tree_stats([_hand_built(), lonely])
    assert stats == {
        "trees": 2,
        "nodes": 8,
        "rollout_nodes": 1,
        "leaves": 5,
        "terminal_leaves": 4,
        "leaf_score_histogram": {"0": 3, "1": 1},
        "trees_with_success": 1,
        "trees_with_success_and_failure": 1,
        "share_with_success_and_failure": 0.5,
        "mean_leaf_depth": pytest.approx((2 + 2 + 2 + 1 + 1) / 5),
        "mean_nodes_per_tree": 4.0,
    }
    assert tree_stats([])["trees"] == 0


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(TreeFileError, match="no such tree file"):
        Tree.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TreeFileError, match="bad.json: not valid JSON"):
        Tree.load(bad)
    bad.write_text(json.dumps({"format": 1, "env": "walk"}))
    with pytest.raises(TreeFileError, match="bad.json: not a valid tree file"):
        Tree.load(bad)
    with pytest.raises(TreeFileError, match="no such file or folder"):
        load_trees(tmp_path / "nope")


def test_load_trees_reads_a_run_folder(tmp_path):
    for task_id in (3, 1):
        _searched_tree(task_id).save(tree_path(tmp_path, task_id))
    assert [t.task_id for t in load_trees(tmp_path)] == [1, 3]
    assert [t.task_id for t in load_trees(tmp_path / "trees")] == [1, 3]
    assert [t.task_id for t in load_trees(tree_path(tmp_path, 3))] == [3]
