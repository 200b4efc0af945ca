"""MCTS: UCT order, de-duplication, terminal propagation, depth limit, exact backups, both variants,
batching across trees, and snapshot vs replay envs."""

from __future__ import annotations

import json
import math

import pytest

from coursecorrect.agent import NO_ACTION_OBSERVATION
from coursecorrect.search import MCTSConfig, Node, TreeSearch, search_trees, uct
from coursecorrect.search.batch import Counters
from coursecorrect.search.mcts import request_seed
from search_doubles import PolicyLLM, ReplayWalkEnv, WalkEnv, hashed_policy

RIGHT_OR_FALL = ["Action: right", "Action: fall"]


def _fixed(choices):
    """Sample j answers choices[j]: the same for every prompt."""
    return lambda conversation, j: choices[j % len(choices)]


def _search(respond, config, tasks=(0,), env=WalkEnv, batch_trees=8):
    llm = PolicyLLM(respond)
    trees = list(search_trees(lambda: env(max_steps=100), llm, list(tasks), config, batch_trees))
    return sorted(trees, key=lambda t: t.task_id), llm


def _summary(tree):
    """(depth, action, visits, value, terminal, rollout, score) per node, depth first."""
    return [(n.depth, n.action, n.visits, n.value, n.terminal, n.rollout, n.score) for n in tree.nodes()]


def _search_with_children(visits_values, terminal=(), rollout=(), parent_visits=10, seed=0):
    search = TreeSearch(WalkEnv(), 0, MCTSConfig(seed=seed))
    parent = search.tree.root
    parent.visits = parent_visits
    for i, (visits, value) in enumerate(visits_values):
        parent.add(Node(id=i + 1, response=f"r{i}", action=None, observation="", depth=1, visits=visits, value=value,
                        terminal=i in terminal, rollout=i in rollout))
    return search, parent


def test_uct_formula():
    assert uct(0.0, 0, math.log(5), 0.25) == math.inf
    assert uct(3.0, 4, math.log(10), 0.25) == pytest.approx(0.75 + 0.25 * math.sqrt(math.log(10) / 4))


def test_select_prefers_unvisited_then_highest_uct():
    search, parent = _search_with_children([(4, 3.0), (0, 0.0), (2, 0.0)])
    assert search._select(parent).response == "r1", "unvisited scores +inf"
    search, parent = _search_with_children([(4, 3.0), (1, 0.0), (2, 2.0)])
    # Q + 0.25 sqrt(ln 10 / N): 0.75+0.19=0.94, 0+0.38=0.38, 1+0.27=1.27
    assert search._select(parent).response == "r2"


def test_select_skips_terminal_and_rollout_children():
    search, parent = _search_with_children([(0, 0.0), (1, 1.0), (0, 0.0), (3, 0.0)], terminal={0}, rollout={2})
    assert search._select(parent).response == "r1"


def test_select_breaks_ties_with_the_seeded_tree_rng():
    picks = []
    for seed in range(20):
        search, parent = _search_with_children([(0, 0.0), (0, 0.0), (0, 0.0)], seed=seed)
        first = search._select(parent).response
        search, parent = _search_with_children([(0, 0.0), (0, 0.0), (0, 0.0)], seed=seed)
        assert search._select(parent).response == first, "same seed and task, same pick"
        picks.append(first)
    assert set(picks) == {"r0", "r1", "r2"}, "ties are broken at random, not by position"


def test_expansion_deduplicates_children_on_response_text():
    config = MCTSConfig(variant="released", iterations=1, n_children=4, max_depth=1)
    (tree,), llm = _search(_fixed(["Action: left", "Thought: hm", "Action: left", "Thought: hm"]), config)
    responses = [c.response for c in tree.root.children]
    assert responses == ["Action: left", "Thought: hm"] and llm.calls[0] == (4, 1)
    no_action = tree.root.children[1]
    assert no_action.action is None and no_action.observation == NO_ACTION_OBSERVATION
    assert tree.root.children[0].observation == "You are at 0."


@pytest.mark.parametrize("variant", ["paper", "released"])
def test_root_whose_children_are_all_terminal_stops_the_search(variant):
    config = MCTSConfig(variant=variant, iterations=8, n_children=2)
    (tree,), llm = _search(_fixed(["Action: fall", "Action: fall "]), config)
    assert tree.root.terminal and all(c.terminal for c in tree.root.children)
    assert len(llm.calls) == 1, "the root turned terminal after its expansion: no more iterations"
    assert tree.meta["iterations"] == 1 and tree.meta["finished"]
    assert (tree.root.visits, tree.root.value) == (2, 0.0)


def test_depth_limit_makes_nodes_terminal():
    config = MCTSConfig(variant="released", iterations=3, n_children=1, max_depth=3)
    (tree,), _ = _search(_fixed(["Action: left"]), config)
    depths = [n.depth for n in tree.nodes()]
    assert max(depths) == 4, "nodes deeper than max_depth are terminal and never expanded"
    (leaf,) = list(tree.leaves())
    assert leaf.terminal and not leaf.done and leaf.score == 0.0
    assert all(n.terminal for n in tree.nodes()), "terminal propagates to the root"
    assert tree.meta["iterations"] == 1


def test_released_variant_backs_up_terminal_children_exactly():
    config = MCTSConfig(variant="released", iterations=8, n_children=2)
    (tree,), llm = _search(_fixed(RIGHT_OR_FALL), config)
    # root -> right (at 1) -> {right: reached 2 (score 1), fall (0)}; root -> fall (0)
    assert _summary(tree) == [
        (0, None, 3, 1.0, True, False, 0.0),
        (1, "right", 2, 1.0, True, False, 0.0),
        (2, "right", 1, 1.0, True, False, 1.0),
        (2, "fall", 1, 0.0, True, False, 0.0),
        (1, "fall", 1, 0.0, True, False, 0.0),
    ]
    assert llm.calls == [(2, 1), (2, 1)], "one expansion per node on the descent, n = n_children"


def test_paper_variant_rollouts_backups_and_promotion():
    config = MCTSConfig(variant="paper", iterations=8, n_children=2, rollouts=2)
    (tree,), llm = _search(_fixed(RIGHT_OR_FALL), config)
    # iteration 1: expand root -> right (at 1), fall (terminal, backed up: 0); 2 rollouts from "right" both
    # answer "right" (reached 2, score 1) and share one rollout node. Iteration 2: expand "right": "right"
    # promotes the rollout node to a child (no new backup), "fall" is new and terminal (backed up: 0).
    assert _summary(tree) == [
        (0, None, 4, 2.0, True, False, 0.0),
        (1, "right", 3, 2.0, True, False, 0.0),
        (2, "right", 2, 2.0, True, False, 1.0),
        (2, "fall", 1, 0.0, True, False, 0.0),
        (1, "fall", 1, 0.0, True, False, 0.0),
    ]
    assert llm.calls == [(2, 1), (1, 2), (2, 1)], "expansion n=2, then both rollouts in one call with n=1"


def test_paper_rollout_leaves_stay_in_the_tree():
    # Expansions go left (stay at 0) or wander; rollouts always go left until the depth limit.
    def respond(conversation, j):
        return "Action: left" if j == 0 else f"Thought: idle {len(conversation)}"

    config = MCTSConfig(variant="paper", iterations=2, n_children=2, rollouts=3, max_depth=4)
    (tree,), llm = _search(respond, config)
    rollout_leaves = [n for n in tree.leaves() if n.rollout]
    assert rollout_leaves and all(n.terminal and n.depth == 5 and n.score == 0.0 for n in rollout_leaves)
    # two expansions (depths 0 and 1) can promote rollout nodes down to depth 2, not deeper
    assert all(p.rollout for leaf in rollout_leaves for p in leaf.path()[3:]), "rollout paths are kept"
    assert all(d.rollout for n in tree.nodes() if n.rollout for d in n.walk()), "rollouts only add rollout nodes"
    assert sum(n for n, _ in llm.calls) >= 3


@pytest.mark.parametrize("variant", ["paper", "released"])
def test_search_invariants_on_a_random_policy(variant):
    choices = ["Action: right", "Action: left", "Action: fall", "Thought: hmm", "Action: jump", "right"]
    config = MCTSConfig(variant=variant, iterations=6, n_children=4, rollouts=2, max_depth=5, seed=3)
    trees, _ = _search(hashed_policy(choices), config, tasks=range(4))
    for tree in trees:
        ids = [n.id for n in tree.nodes()]
        assert sorted(ids) == list(range(len(ids))) == list(range(tree.meta["nodes"]))
        for node in tree.nodes():
            responses = [c.response for c in node.children]
            assert len(responses) == len(set(responses)), "siblings are unique on response text"
            assert node.depth <= config.max_depth + 1
            if node.children:  # every backup through a node continues into exactly one child
                assert node.visits == sum(c.visits for c in node.children)
                assert node.value == pytest.approx(sum(c.value for c in node.children))
            if node.expanded and all(c.terminal for c in node.children if not c.rollout):
                assert node.terminal
            if node.terminal and node.is_leaf:
                assert node.visits >= 1 and node.value == node.visits * node.score
        assert tree.root.visits == sum(n.visits for n in tree.terminal_leaves())
        if variant == "released":
            assert not any(n.rollout for n in tree.nodes())


def test_one_generate_call_per_step_covers_all_active_trees():
    choices = ["Action: right", "Action: left", "Thought: hmm", "Action: jump"]
    config = MCTSConfig(variant="paper", iterations=3, n_children=3, rollouts=2, max_depth=4)
    counters = Counters()
    llm = PolicyLLM(hashed_policy(choices))
    trees = list(search_trees(WalkEnv, llm, list(range(6)), config, batch_trees=3, counters=counters))
    assert len(trees) == 6 and counters.trees == 6
    assert llm.calls[0] == (3, 3), "the first step expands the three active roots in one call"
    assert max(size for n, size in llm.calls if n == 1) > 2, "rollouts of several trees share a call"
    assert all(size <= 3 for n, size in llm.calls if n == 3), "at most one expansion per active tree"
    assert counters.calls == len(llm.calls) and counters.batch_sizes == llm.calls
    solo = PolicyLLM(hashed_policy(choices))
    alone = list(search_trees(WalkEnv, solo, list(range(6)), config, batch_trees=1))
    assert len(solo.calls) > len(llm.calls)
    by_task = {t.task_id: t.to_dict() for t in alone}
    assert all(by_task[t.task_id] == t.to_dict() for t in trees), "batching does not change any tree"


@pytest.mark.parametrize("variant", ["paper", "released"])
def test_snapshot_and_replay_envs_give_identical_trees(variant):
    choices = ["Action: right", "Action: left", "Action: fall", "Thought: hmm"]
    config = MCTSConfig(variant=variant, iterations=4, n_children=3, rollouts=2, max_depth=6)
    assert WalkEnv().supports_snapshot and not ReplayWalkEnv().supports_snapshot
    fast, _ = _search(hashed_policy(choices), config, tasks=range(3))
    envs = []

    def make():
        envs.append(ReplayWalkEnv(max_steps=100))
        return envs[-1]

    slow = sorted(search_trees(make, PolicyLLM(hashed_policy(choices)), [0, 1, 2], config), key=lambda t: t.task_id)
    forced, _ = _search(hashed_policy(choices), config.model_copy(update={"snapshots": False}), tasks=range(3))

    def plain(tree):
        data = json.loads(json.dumps(tree.to_dict()))
        data["meta"].pop("snapshots")
        data["meta"]["config"].pop("snapshots")
        return data

    assert [plain(t) for t in fast] == [plain(t) for t in slow] == [plain(t) for t in forced]
    assert fast[0].meta["snapshots"] and not slow[0].meta["snapshots"] and not forced[0].meta["snapshots"]
    assert sum(e.resets for e in envs) > 3, "the replay env really was reset and replayed"
    assert sum(t.meta["nodes"] for t in fast) > 20


def test_prompts_are_the_path_messages():
    config = MCTSConfig(variant="released", iterations=1, n_children=2, max_depth=3)
    (tree,), llm = _search(_fixed(["Action: left", "Thought: x"]), config)
    deepest = max((n for n in tree.nodes() if n.expanded), key=lambda n: n.depth)
    expected = [{"role": m.role, "content": m.content} for m in tree.messages(deepest)]
    assert expected in llm.prompts
    assert expected[3:5] == [{"role": "assistant", "content": deepest.path()[1].response},
                             {"role": "user", "content": deepest.path()[1].observation}]


def test_config_fields_are_checked():
    from coursecorrect.config import validate_config
    from coursecorrect.errors import ConfigError

    with pytest.raises(ConfigError, match="mcts: variant"):
        validate_config(MCTSConfig, {"variant": "alphazero"}, source="mcts")
    with pytest.raises(ConfigError, match="rollouts"):
        validate_config(MCTSConfig, {"rollouts": 0}, source="mcts")
    with pytest.raises(ConfigError, match="unknown field"):
        validate_config(MCTSConfig, {"iteration": 3}, source="mcts")
    assert all(f.description for f in MCTSConfig.model_fields.values())


def test_request_seeds_depend_on_the_seed_the_task_and_the_request_number_only():
    seeds = {request_seed(seed, task, index) for seed in (0, 1) for task in (3, 4) for index in range(50)}
    assert len(seeds) == 200 and all(0 <= s < 2**30 for s in seeds)
    assert request_seed(0, 3, 7) == request_seed(0, 3, 7)
    search = TreeSearch(WalkEnv(), 3, MCTSConfig(variant="paper", iterations=2, n_children=2, rollouts=2, seed=1))
    run = search.run()
    (expansion,) = next(run)
    assert (expansion.n, expansion.seed) == (2, request_seed(1, 3, 0))
