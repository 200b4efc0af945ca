"""Revision data (Agent-R stage 2) on hand-built trees: pair rules, critics, splicing, build modes, gold, CLI."""

from __future__ import annotations

import json
import re

import pytest
import typer
from typer.testing import CliRunner

from coursecorrect.agent import episode_start, parse_action
from coursecorrect.cli.revision import build_data_command, export_command
from coursecorrect.data import read_conversations
from coursecorrect.envs.textcraft import TextCraftEnv
from coursecorrect.errors import CourseCorrectError
from coursecorrect.revision import REVISION_THOUGHTS, BuildConfig, PairConfig, build_data, find_pairs, splice
from coursecorrect.revision.build import build_gold, gold_conversations, gold_thought
from coursecorrect.revision.critics import DirectCritic, ModelCritic, ValueCritic, parse_judgement
from coursecorrect.search import Node, Tree, tree_path
from doubles import ScriptedLLM
from search_doubles import WalkEnv


def _tree(task_id: int = 0, root_value: float = 3.0) -> Tree:
    """    0 ─┬─ 1 get a ─┬─ 3 craft b ─┬─ 8 craft goal   score 1.0
              │           │             └─ 9 inventory    score 0.0  (shares 2 steps with 8)
              │           └─ 4 jump ───── 6 inventory     score 0.0  (shares 1 step with 8)
              └─ 2 get z ─┬─ 5 get y                      score 0.6
                          └─ 7 look                       score 0.1
    """
    tree = Tree.new("walk", task_id, episode_start("Craft things.", "Goal: craft goal."))
    tree.root.visits, tree.root.value = 9, root_value

    def add(parent: Node, node_id: int, action: str, visits: int, value: float, score: float | None = None) -> Node:
        node = Node(node_id, f"Thought: t{node_id}\nAction: {action}", action, f"obs {node_id}", parent.depth + 1,
                    visits=visits, value=value)
        if score is not None:
            node.score, node.terminal, node.done = score, True, True
        return parent.add(node)

    one = add(tree.root, 1, "get a", 6, 3.0)
    two = add(tree.root, 2, "get z", 3, 0.7)
    three = add(one, 3, "craft b", 3, 2.0)
    four = add(one, 4, "jump", 2, 0.0)
    add(two, 5, "get y", 1, 0.6, score=0.6)
    add(four, 6, "inventory", 1, 0.0, score=0.0)
    add(two, 7, "look", 2, 0.1, score=0.1)
    add(three, 8, "craft goal", 2, 2.0, score=1.0)
    add(three, 9, "inventory", 1, 0.0, score=0.0)
    return tree


def _ids(pairs):
    return sorted((p.bad.id, p.good.id) for p in pairs)


# -- pairs ---------------------------------------------------------------------------------------------------


def test_paper_rule_pairs_bad_below_beta_with_good_at_least_alpha():
    tree = _tree()
    assert _ids(find_pairs(tree, PairConfig())) == [(6, 5), (6, 8), (7, 5), (7, 8), (9, 5), (9, 8)]
    assert _ids(find_pairs(tree, PairConfig(alpha=0.6))) == _ids(find_pairs(tree, PairConfig())), "alpha inclusive"
    assert _ids(find_pairs(tree, PairConfig(alpha=0.61))) == [(6, 8), (7, 8), (9, 8)]
    assert _ids(find_pairs(tree, PairConfig(alpha=1.0))) == [(6, 8), (7, 8), (9, 8)], "iteration 3 admits pairs"
    assert _ids(find_pairs(tree, PairConfig(beta=0.1))) == [(6, 5), (6, 8), (9, 5), (9, 8)], "bad < beta strictly"


def test_released_rule_uses_a_gap_a_strict_alpha_and_skips_worthless_roots():
    tree = _tree()
    released = PairConfig(rule="released")
    assert _ids(find_pairs(tree, released)) == [(5, 8), (6, 5), (6, 8), (7, 5), (7, 8), (9, 5), (9, 8)]
    assert _ids(find_pairs(tree, released.model_copy(update={"alpha": 0.6}))) == [(5, 8), (6, 8), (7, 8), (9, 8)]
    gap = _ids(find_pairs(tree, released.model_copy(update={"beta": 0.5})))
    assert gap == [(6, 5), (6, 8), (7, 8), (9, 5), (9, 8)], "0.6 - 0.1 is not more than 0.5"
    assert find_pairs(_tree(root_value=0.0), released) == []
    assert find_pairs(_tree(root_value=0.0), PairConfig()) != [], "the paper rule looks at leaves only"


def test_pairs_are_shuffled_reproducibly_and_capped():
    tree = _tree()
    orders = {seed: [(p.bad.id, p.good.id) for p in find_pairs(tree, PairConfig(seed=seed))] for seed in range(6)}
    assert orders[0] == [(p.bad.id, p.good.id) for p in find_pairs(_tree(), PairConfig(seed=0))]
    assert len(set(map(tuple, orders.values()))) > 1, "the seed changes the order"
    capped = find_pairs(tree, PairConfig(seed=3, max_pairs_per_tree=2))
    assert [(p.bad.id, p.good.id) for p in capped] == orders[3][:2]
    assert all(p.tree is tree for p in capped)


def test_shared_steps_and_clamp():
    pairs = {(p.bad.id, p.good.id): p for p in find_pairs(_tree(), PairConfig())}
    assert {key: p.shared_steps for key, p in pairs.items()} == {
        (9, 8): 2, (6, 8): 1, (7, 8): 0, (9, 5): 0, (6, 5): 0, (7, 5): 1,
    }
    assert [pairs[9, 8].clamp(t) for t in (1, 2, 3, 7)] == [3, 3, 3, 3]
    assert [pairs[6, 8].clamp(t) for t in (1, 2, 3)] == [2, 2, 3]


# -- critics -------------------------------------------------------------------------------------------------


def _pairs(**config):
    return {(p.bad.id, p.good.id): p for p in find_pairs(_tree(), PairConfig(**config))}


def test_direct_critic_keeps_the_whole_bad_path():
    pairs = _pairs()
    found = DirectCritic()(list(pairs.values()))
    assert [t.t_prime for t in found] == [p.bad.depth for p in pairs.values()]
    assert all(t.critic == "direct" and t.flagged == t.t_prime for t in found)


def test_value_critic_takes_the_first_step_without_value():
    pairs = _pairs()
    keys = list(pairs)
    found = dict(zip(keys, ValueCritic()(list(pairs.values())), strict=True))
    assert found[6, 8].t_prime == 2 and found[6, 8].flagged == 2  # 4 jump: Q = 0
    assert found[9, 8].t_prime == 3 and found[9, 8].flagged == 3
    assert found[7, 8].t_prime == 2 and found[7, 8].flagged is None  # no step at Q <= 0: the bad leaf
    loose = dict(zip(keys, ValueCritic(threshold=0.3)(list(pairs.values())), strict=True))
    assert loose[7, 8].flagged == 1 and loose[7, 8].t_prime == 1  # 2 get z: Q = 0.23
    assert loose[7, 5].flagged == 1 and loose[7, 5].t_prime == 2, "a step the good path shares is clamped away"


@pytest.mark.parametrize(("text", "verdict"), [
    ("The step wastes items.\nJudgement: Bad.", "bad"),
    ("judgement: good", "good"),
    ("JUDGEMENT: Uncertain", "uncertain"),
    ("Judgement: Bad\nOn reflection it helps.\nJudgement: Good", "good"),
    ("Judgement: Good\nWait, no.\njudgement: bad!", "bad"),
    ("It helps a lot.", "unparsed"),
    ("Judgement:", "unparsed"),
    ("Judgement: **Good**", "good"),
    ("Judgement:\n\nGood.", "good"),
    ("Judgment: good", "good"),
    ("Judgement: Good | Bad | Uncertain", "unparsed"),
    ("Judgement: not good", "unparsed"),
    ("Judgement: Good. It gets the needed item.", "good"),
])
def test_parse_judgement(text, verdict):
    assert parse_judgement(text) == verdict


def _judged_action(conversation) -> str:
    return re.search(r"# The step to judge: step \d+\nAction: (.*)", conversation[-1]["content"])[1]


REPLIES = {
    "get a": "It fetches an ingredient.\nJudgement: Good",
    "get z": "Hard to say.\njudgement: uncertain",
    "jump": "Jumping does nothing.\nJudgement: Bad.",
    "craft b": "Judgement: Bad\nActually it is needed.\nJudgement: Good",
    "inventory": "I have no opinion.",
    "look": "JUDGEMENT: bad",
}


def test_model_critic_judges_every_step_in_one_call():
    pairs = _pairs()
    llm = ScriptedLLM(lambda conversation: REPLIES[_judged_action(conversation)])
    found = dict(zip(pairs, ModelCritic(llm)(list(pairs.values())), strict=True))
    assert llm.batch_sizes == [7], "one call; each distinct bad-path node (1 4 6 3 9 2 7) judged once"
    assert found[6, 8].t_prime == 2 and found[6, 8].verdicts == ("good", "bad", "unparsed")
    assert found[9, 8].t_prime == 3 and found[9, 8].verdicts == ("good", "good", "unparsed"), "no verdict = bad"
    assert found[7, 8].t_prime == 2 and found[7, 8].verdicts == ("uncertain", "bad"), "uncertain goes on"
    assert found[6, 8].texts[1] == REPLIES["jump"] and found[6, 8].critic == "model"


def test_model_critic_prompt_shows_task_history_and_step():
    prompts = []
    llm = ScriptedLLM(lambda conversation: prompts.append(conversation[-1]["content"]) or "Judgement: Good")
    pairs = _pairs()
    found = ModelCritic(llm, max_new_tokens=16)([pairs[6, 8]])
    assert found[0].flagged is None and found[0].t_prime == 3, "no bad step: the whole bad path"
    first, _, last = prompts
    assert "Craft things." in last and "Goal: craft goal." in last
    assert "None: this is the agent's first step." in first
    assert "Step 1\nAction: get a\nObservation: obs 1\n\nStep 2\nAction: jump\nObservation: obs 4" in last
    assert "# The step to judge: step 3\nAction: inventory\nObservation: obs 6" in last
    assert "Judgement: Good" in last and "Judgement: Bad" in last and "Judgement: Uncertain" in last


def test_model_critic_cannot_blame_a_shared_step():
    pairs = _pairs()
    found = dict(zip(pairs, ModelCritic(ScriptedLLM(lambda c: "Judgement: Bad"))(list(pairs.values())), strict=True))
    assert {key: t.t_prime for key, t in found.items()} == {
        (9, 8): 3, (6, 8): 2, (7, 8): 1, (9, 5): 1, (6, 5): 1, (7, 5): 2,
    }
    assert all(t.flagged == 1 for t in found.values())


# -- splice --------------------------------------------------------------------------------------------------


def _check_losses(conversation, t_prime: int, shared: int, good_depth: int) -> None:
    messages = conversation.messages
    assert [m.role for m in messages] == ["user", "assistant"] * (len(messages) // 2) + ["user"]
    assert not any(m.loss for m in messages if m.role == "user"), "observations never train"
    assistants = [m for m in messages[3:] if m.role == "assistant"]
    bad, revision, good = assistants[:t_prime], assistants[t_prime], assistants[t_prime + 1:]
    assert not messages[1].loss and not any(m.loss for m in bad)
    assert revision.loss and revision.content.startswith("Thought: ") and revision.content.endswith("\nAction: wait")
    assert len(good) == good_depth - shared and all(m.loss for m in good)
    assert messages[4 + 2 * t_prime].content == "ok."


def test_splice_cuts_the_bad_path_and_continues_where_the_good_path_diverges():
    pair = _pairs()[6, 8]
    conversation = splice(pair, 3, REVISION_THOUGHTS[0], critic="model", extra_meta={"critic_flagged": 3})
    contents = [m.content for m in conversation.messages]
    assert contents[:3] == ["Craft things.", "Ok.", "Goal: craft goal."]
    assert contents[3:9] == ["Thought: t1\nAction: get a", "obs 1", "Thought: t4\nAction: jump", "obs 4",
                             "Thought: t6\nAction: inventory", "obs 6"]
    assert contents[9:11] == [f"Thought: {REVISION_THOUGHTS[0]}\nAction: wait", "ok."]
    assert contents[11:] == ["Thought: t3\nAction: craft b", "obs 3", "Thought: t8\nAction: craft goal", "obs 8"]
    _check_losses(conversation, 3, 1, 3)
    assert conversation.meta == {
        "env": "walk", "task_id": 0, "kind": "revision", "bad_node": 6, "bad_score": 0.0, "bad_depth": 3,
        "good_node": 8, "good_score": 1.0, "good_depth": 3, "t_prime": 3, "divergence": 1, "critic": "model",
        "critic_flagged": 3,
    }


def test_splice_clamps_a_transition_inside_the_shared_prefix():
    pairs = _pairs()
    for key, t_prime, expected in [((6, 8), 1, 2), ((9, 8), 1, 3), ((9, 8), 2, 3), ((7, 8), 1, 1), ((9, 5), 9, 3)]:
        pair = pairs[key]
        conversation = splice(pair, t_prime, REVISION_THOUGHTS[1])
        assert conversation.meta["t_prime"] == expected
        _check_losses(conversation, expected, pair.shared_steps, pair.good.depth)
    short = splice(pairs[9, 8], 1, "x")
    assert [m.content for m in short.messages[3:13:2]] == [
        "Thought: t1\nAction: get a", "Thought: t3\nAction: craft b", "Thought: t9\nAction: inventory",
        "Thought: x\nAction: wait", "Thought: t8\nAction: craft goal",
    ]
    assert len(short.messages) == 3 + 2 * (3 + 1 + 1)


# -- build ---------------------------------------------------------------------------------------------------


def test_direct_revision_data_and_counts():
    result = build_data([_tree(0), _tree(1)], BuildConfig(mode="direct-revision"))
    kinds = [c.meta["kind"] for c in result.conversations]
    assert kinds == ["revision"] * 6 + ["good"] * 2 + ["revision"] * 6 + ["good"] * 2
    assert all(c.meta["critic"] == "direct" for c in result.conversations if c.meta["kind"] == "revision")
    assert result.counts == {"walk": {
        "trees": 2, "trees_used": 2, "pairs": 12, "revision": 12, "good": 4, "optimal": 0, "gold": 0,
        "gold_failed": 0, "mean_t_prime": pytest.approx(2.667, abs=1e-3), "mean_bad_prefix": 2.0,
        "mean_bad_depth": pytest.approx(2.667, abs=1e-3), "critic_clamped": 0,
    }}
    for c in result.conversations:
        if c.meta["kind"] == "good":
            assert all(m.loss for m in c.messages[3:] if m.role == "assistant") and not c.messages[1].loss
    def thoughts(result):
        return [c.messages[3 + 2 * c.meta["t_prime"]].content for c in result.conversations
                if c.meta["kind"] == "revision"]

    said = thoughts(result)
    assert said == thoughts(build_data([_tree(0), _tree(1)], BuildConfig(mode="direct-revision")))
    assert {t.removeprefix("Thought: ").removesuffix("\nAction: wait") for t in said} <= set(REVISION_THOUGHTS)


def test_agent_r_with_the_model_critic_keeps_its_judgements():
    llm = ScriptedLLM(lambda conversation: REPLIES[_judged_action(conversation)])
    trees, config = [_tree(0), _tree(1)], BuildConfig(pairs=PairConfig(max_pairs_per_tree=4))
    result = build_data(trees, config, llm)
    steps = {id(n) for tree in trees for p in find_pairs(tree, config.pairs) for n in p.bad.path()[1:]}
    assert llm.batch_sizes == [len(steps)], "one call for all steps of all pairs of all trees"
    revisions = [c.meta for c in result.conversations if c.meta["kind"] == "revision"]
    assert len(revisions) == 8 and all(m["critic"] == "model" for m in revisions)
    tree = _tree()
    for meta in revisions:
        assert len(meta["critic_verdicts"]) == meta["bad_depth"] and meta["critic_flagged"] is not None
        flagged = tree.find(meta["bad_node"]).path()[meta["critic_flagged"]]
        assert meta["critic_reason"] == REPLIES[flagged.action]
    with pytest.raises(CourseCorrectError, match="model critic needs"):
        build_data([_tree()], BuildConfig())
    assert build_data([_tree()], BuildConfig(critic="value")).counts["walk"]["revision"] == 6


def test_leaf_modes():
    trees = [_tree()]

    def metas(mode):
        return [(c.meta["node"], c.meta["kind"]) for c in build_data(trees, BuildConfig(mode=mode)).conversations]

    assert metas("good") == [(8, "good"), (5, "good")]
    assert metas("optimal") == [(8, "optimal")]
    assert metas("optimal+good") == [(8, "optimal"), (5, "good")]
    assert build_data(trees, BuildConfig(mode="good", pairs=PairConfig(alpha=0.7))).counts["walk"]["good"] == 1
    conversation = build_data(trees, BuildConfig(mode="optimal")).conversations[0]
    assert conversation.messages == trees[0].messages(trees[0].find(8))
    with pytest.raises(CourseCorrectError, match="gold data"):
        build_data(trees, BuildConfig(mode="gold"))


def test_good_trajectories_are_deduplicated_per_tree():
    tree = _tree()
    twin = Node(10, "Thought: t8\nAction: craft goal", "craft goal", "obs 8", 3, score=1.0, terminal=True)
    tree.find(3).add(twin)
    assert [c.meta["node"] for c in build_data([tree], BuildConfig(mode="optimal")).conversations] == [8]


# -- gold ----------------------------------------------------------------------------------------------------


def test_gold_conversations_solve_textcraft():
    env = TextCraftEnv()
    ids = env.task_ids("train")[:3]
    conversations = gold_conversations(env, ids)
    assert [c.meta["task_id"] for c in conversations] == ids
    for conversation in conversations:
        first = env.reset(conversation.meta["task_id"])
        assert conversation.messages[:3] == episode_start(env.instruction, first)
        turns = conversation.messages[3:]
        assert [m.role for m in turns] == ["assistant", "user"] * (len(turns) // 2)
        result = None
        for said, seen in zip(turns[::2], turns[1::2], strict=True):
            assert said.loss and re.fullmatch(r"Thought: [^\n]+\nAction: [^\n]+", said.content)
            result = env.step(parse_action(said.content))
            assert result.observation == seen.content
        assert result.reward == 1 and result.terminated and conversation.meta["kind"] == "gold"


def test_gold_thoughts_fit_the_action():
    assert gold_thought("get 2 oak logs") == "I need 2 oak logs for the recipes, so I will get them."
    assert gold_thought("get 1 lapis lazuli").endswith("so I will get it.")
    assert gold_thought("craft 4 oak planks using 1 oak logs") == "I have 1 oak logs, so I can craft 4 oak planks now."
    assert "which is my goal" in gold_thought("craft 1 stick using 2 oak planks", final=True)
    assert gold_thought("inventory") == "I should check my inventory to see what I have."


class _FailingExpert(WalkEnv):
    def expert_actions(self) -> list[str]:
        return ["right"] if self.goal == 2 else ["right", "right", "right"]


def test_gold_skips_unsolved_tasks_and_needs_an_expert():
    result = build_gold(_FailingExpert(), [0, 1, 2, 3])
    assert [c.meta["task_id"] for c in result.conversations] == [1, 3]
    assert result.counts["walk"]["gold"] == 2 and result.counts["walk"]["gold_failed"] == 2
    with pytest.raises(CourseCorrectError, match="no expert"):
        gold_conversations(WalkEnv(), [0])


# -- CLI -----------------------------------------------------------------------------------------------------


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("build-data")(build_data_command)
    app.command("export")(export_command)
    return app


def test_cli_build_data_from_tree_files_and_export(tmp_path):
    for task_id in (4, 2):
        _tree(task_id).save(tree_path(tmp_path / "run", task_id))
    runner = CliRunner()
    out = tmp_path / "data"
    result = runner.invoke(_cli(), ["build-data", "--trees", str(tmp_path / "run"), "--critic", "value",
                                    "--max-pairs-per-tree", "3", "--alpha", "0.7", "--out", str(out)])
    assert result.exit_code == 0, result.output
    conversations = list(read_conversations(out / "data.jsonl"))
    assert [(c.meta["task_id"], c.meta["kind"]) for c in conversations] == [(2, "revision")] * 3 + [(2, "good")] + [
        (4, "revision")] * 3 + [(4, "good")]
    counts = json.loads((out / "counts.json").read_text())
    assert counts["walk"]["pairs"] == 6 and counts["walk"]["revision"] == 6
    assert "revision" in result.output and "walk" in result.output and "mean_t_prime" in result.output
    exported = runner.invoke(_cli(), ["export", str(out / "data.jsonl"), "--format", "xtuner",
                                      "--out", str(tmp_path / "x.json")])
    assert exported.exit_code == 0, exported.output
    assert len(json.loads((tmp_path / "x.json").read_text())) == 8
    no_model = runner.invoke(_cli(), ["build-data", "--trees", str(tmp_path / "run"), "--out", str(out)])
    assert isinstance(no_model.exception, CourseCorrectError) and "--model" in str(no_model.exception)
    bad_format = runner.invoke(_cli(), ["export", str(out / "data.jsonl"), "--format", "csv", "--out", "x"])
    assert isinstance(bad_format.exception, CourseCorrectError)


def test_cli_gold_mode(tmp_path):
    result = CliRunner().invoke(_cli(), ["build-data", "--mode", "gold", "--env", "textcraft", "--split", "train",
                                         "--limit", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    conversations = list(read_conversations(tmp_path / "data.jsonl"))
    assert len(conversations) == 2 and {c.meta["kind"] for c in conversations} == {"gold"}
    assert json.loads((tmp_path / "counts.json").read_text())["textcraft"]["gold"] == 2


def test_cli_model_critic_with_tiny_random_lm(tmp_path):
    """The real transformers backend as the critic, end to end (a few tokens per judgement)."""
    tree = _tree(1)
    tree.meta["model"] = "tiny-random"
    tree.save(tree_path(tmp_path / "run", 1))
    (tmp_path / "build.toml").write_text('critic_max_new_tokens = 4\n[pairs]\nmax_pairs_per_tree = 2\n')
    result = CliRunner().invoke(_cli(), ["build-data", "--trees", str(tmp_path / "run"), "--config",
                                         str(tmp_path / "build.toml"), "--out", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    revisions = [c for c in read_conversations(tmp_path / "data" / "data.jsonl") if c.meta["kind"] == "revision"]
    assert len(revisions) == 2 and all(c.meta["critic"] == "model" for c in revisions)
    assert all(len(c.meta["critic_verdicts"]) == c.meta["bad_depth"] for c in revisions)
