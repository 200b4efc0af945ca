"""Training data from search trees (Agent-R stage 2) and its baselines.

Modes:

- ``agent-r``: revision trajectories (transition point from the configured critic) + good trajectories;
- ``direct-revision``: the same with the critic forced to ``direct`` (the whole bad path is kept);
- ``good``: terminal leaves that pass the pair rule's good test (score >= alpha under the paper rule);
- ``optimal``: terminal leaves with score 1; ``optimal+good``: both (a leaf once, kind "optimal" if it is);
- ``gold``: the env's expert trajectories (:func:`gold_conversations`), built from an env, not from trees.

Leaf trajectories are whole conversations to a leaf (every agent turn trained), de-duplicated per tree.
Two knobs thin the result against self-training collapse: ``dedup = "actions"`` keeps one trajectory per
action sequence (near-copies differ only in their thoughts), and ``max_per_task`` caps each task's share.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any, Literal

from pydantic import Field

from coursecorrect.agent.parsing import parse_action
from coursecorrect.agent.prompt import episode_start
from coursecorrect.config import MAX_COUNT, MAX_TOKENS, Config, Seed
from coursecorrect.data.conversation import Conversation, Message, write_conversations
from coursecorrect.data.tree import SUCCESS, Node, Tree
from coursecorrect.envs.base import Env
from coursecorrect.errors import CourseCorrectError
from coursecorrect.io import atomic_write_json
from coursecorrect.llm.base import LLM
from coursecorrect.revision.critics import Critic, DirectCritic, ModelCritic, ValueCritic
from coursecorrect.revision.pairs import Pair, PairConfig, find_pairs, is_good
from coursecorrect.revision.splice import REVISION_THOUGHTS, splice

Mode = Literal["agent-r", "direct-revision", "good", "optimal", "optimal+good", "gold"]
DATA_FILE = "data.jsonl"
COUNTS_FILE = "counts.json"


class BuildConfig(Config):
    """Which training data to build from a collection's trees."""

    mode: Mode = Field("agent-r", description="agent-r, direct-revision, good, optimal, optimal+good or gold")
    critic: Literal["model", "direct", "value"] = Field("model", description="transition-point finder (agent-r)")
    pairs: PairConfig = Field(default_factory=PairConfig, description="which leaf pairs become revisions")
    value_threshold: float = Field(0.0, description="value critic: a step with Q at most this is an error")
    critic_max_new_tokens: int = Field(128, ge=1, le=MAX_TOKENS, description="model critic: tokens per judgement")
    seed: Seed = Field(0, description="seed of the revision-thought choice and of the per-task cap's sample")
    dedup: Literal["text", "actions"] = Field(
        "text", description="drop repeats of the same text (text), or of the same actions and observations (actions)"
    )
    max_per_task: int | None = Field(
        None, ge=1, le=MAX_COUNT,
        description="keep at most this many trajectories per task (a seeded sample, kinds kept in order)",
    )

    @property
    def critic_name(self) -> str:
        """The critic actually used (direct-revision forces ``direct``)."""
        return "direct" if self.mode == "direct-revision" else self.critic

    @property
    def needs_model(self) -> bool:
        return self.mode in ("agent-r", "direct-revision") and self.critic_name == "model"


@dataclass
class BuildResult:
    """The conversations and, per env, the counts of Agent-R's Table 1 (and a few more)."""

    conversations: list[Conversation]
    counts: dict[str, dict[str, Any]]


def make_critic(config: BuildConfig, llm: LLM | None = None) -> Critic:
    """The transition-point finder of ``config`` (the model critic needs ``llm``, the actor)."""
    name = config.critic_name
    if name == "direct":
        return DirectCritic()
    if name == "value":
        return ValueCritic(config.value_threshold)
    if llm is None:
        raise CourseCorrectError("the model critic needs the actor model: pass an LLM (--model on the command line)")
    return ModelCritic(llm, config.critic_max_new_tokens)


def _leaf_kind(config: BuildConfig) -> Callable[[Node], str | None]:
    """What a terminal leaf is worth to the mode: "good", "optimal" or None (not kept)."""

    def kind(leaf: Node) -> str | None:
        optimal = leaf.score >= SUCCESS
        if config.mode == "optimal":
            return "optimal" if optimal else None
        if config.mode == "optimal+good" and optimal:
            return "optimal"
        return "good" if is_good(leaf.score, config.pairs) else None

    return kind


def leaf_conversations(tree: Tree, kind: Callable[[Node], str | None]) -> list[Conversation]:
    """The whole conversations to the terminal leaves that ``kind`` keeps, de-duplicated on their text."""
    seen: set[tuple[tuple[str, str], ...]] = set()
    out = []
    for leaf in tree.terminal_leaves():
        label = kind(leaf)
        if label is None:
            continue
        messages = tree.messages(leaf)
        key = tuple((m.role, m.content) for m in messages)
        if key in seen:
            continue
        seen.add(key)
        meta = {"env": tree.env, "task_id": tree.task_id, "kind": label, "node": leaf.id, "score": leaf.score,
                "depth": leaf.depth}
        out.append(Conversation(messages=messages, meta=meta))
    return out


def build_data(trees: Sequence[Tree], config: BuildConfig, llm: LLM | None = None) -> BuildResult:
    """The training data of ``config.mode`` from ``trees``. ``llm`` (the actor) is needed only by the model
    critic, which judges every bad-path step of every pair in one batched call."""
    if config.mode == "gold":
        raise CourseCorrectError("gold data comes from an env's expert, not from trees: use build_gold(env, ids)")
    revisions = config.mode in ("agent-r", "direct-revision")
    pairs = [pair for tree in trees for pair in find_pairs(tree, config.pairs)] if revisions else []
    by_tree: dict[int, list[Conversation]] = {id(tree): [] for tree in trees}
    if pairs:
        critic = make_critic(config, llm)
        rng = random.Random(f"coursecorrect-revision:{config.seed}")
        for pair, found in zip(pairs, critic(pairs), strict=True):
            extra: dict[str, Any] = {"critic_flagged": found.flagged}
            if found.verdicts:
                extra["critic_verdicts"] = list(found.verdicts)
                if found.flagged is not None:
                    extra["critic_reason"] = found.texts[found.flagged - 1]
            thought = rng.choice(REVISION_THOUGHTS)
            by_tree[id(pair.tree)].append(splice(pair, found.t_prime, thought, critic.name, extra))
    kind = _leaf_kind(config)
    for tree in trees:
        by_tree[id(tree)] += leaf_conversations(tree, kind)
    conversations = [c for tree in trees for c in thin(by_tree[id(tree)], config)]
    return BuildResult(conversations, summarize(conversations, trees=trees, pairs=pairs))


def action_key(conversation: Conversation) -> tuple[tuple[str, str | None, bool], ...]:
    """What a trajectory does, without its thoughts: each turn's action (assistant) or observation (user)
    and whether it is trained. Two trajectories with one key teach the same moves."""
    return tuple(
        (m.role, parse_action(m.content) if m.role == "assistant" else m.content, m.loss) for m in conversation.messages
    )


def thin(conversations: list[Conversation], config: BuildConfig) -> list[Conversation]:
    """One task's trajectories after ``config.dedup`` and ``config.max_per_task`` (order kept)."""
    if config.dedup == "actions":
        seen: set[tuple[tuple[str, str | None, bool], ...]] = set()
        unique = []
        for conversation in conversations:
            if (key := action_key(conversation)) not in seen:
                seen.add(key)
                unique.append(conversation)
        conversations = unique
    cap = config.max_per_task
    if cap is None or len(conversations) <= cap:
        return conversations
    meta = conversations[0].meta
    rng = random.Random(f"coursecorrect-cap:{config.seed}:{meta['env']}:{meta['task_id']}")
    keep = set(rng.sample(range(len(conversations)), cap))
    return [c for i, c in enumerate(conversations) if i in keep]


GET = re.compile(r"get ([0-9]+) (.+)")
CRAFT = re.compile(r"craft (.+?) using (.+)")


def gold_thought(action: str, final: bool = False) -> str:
    """A short thought that explains an expert action (``final``: the action that completes the task)."""
    if match := GET.fullmatch(action):
        count, item = match.groups()
        return f"I need {count} {item} for the recipes, so I will get {'it' if count == '1' else 'them'}."
    if match := CRAFT.fullmatch(action):
        target, inputs = match.groups()
        if final:
            return f"I have {inputs}, so I can now craft {target}, which is my goal."
        return f"I have {inputs}, so I can craft {target} now."
    if action == "inventory":
        return "I should check my inventory to see what I have."
    return f"The next step is to {action}."


def gold_conversations(env: Env, task_ids: Iterable[int]) -> list[Conversation]:
    """The expert's trajectory of each task, in the agent's "Thought: ...\\nAction: ..." format (every agent
    turn trained). A task whose expert run does not end with reward 1 is left out."""
    out = []
    for task_id in task_ids:
        first = env.reset(task_id)
        plan = env.expert_actions()
        if plan is None:
            raise CourseCorrectError(f"env {env.name!r} has no expert solver, so it has no gold trajectories")
        messages = episode_start(env.instruction, first)
        result = None
        for step, action in enumerate(plan):
            result = env.step(action)
            response = f"Thought: {gold_thought(action, final=step == len(plan) - 1)}\nAction: {action}"
            messages += [Message(role="assistant", content=response, loss=True),
                         Message(role="user", content=result.observation)]
            if result.done:
                break
        if result is not None and result.terminated and result.reward >= SUCCESS:
            meta = {"env": env.name, "task_id": task_id, "kind": "gold", "score": result.reward,
                    "depth": len(messages[3:]) // 2}
            out.append(Conversation(messages=messages, meta=meta))
    return out


def build_gold(env: Env, task_ids: Sequence[int]) -> BuildResult:
    """Gold data with its counts (``gold_failed``: tasks the expert did not solve)."""
    conversations = gold_conversations(env, task_ids)
    failed = {env.name: len(task_ids) - len(conversations)}
    return BuildResult(conversations, summarize(conversations, gold_failed=failed))


def _mean(values: list[float]) -> float | None:
    return round(mean(values), 3) if values else None


def summarize(
    conversations: Sequence[Conversation], trees: Sequence[Tree] = (), pairs: Sequence[Pair] = (),
    gold_failed: dict[str, int] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per env: trees read and used, pairs, trajectories by kind, mean t', mean bad prefix (the bad-path
    steps kept after the shared prefix), mean bad-leaf depth, and pairs whose critic named a shared step."""
    gold_failed = gold_failed or {}
    envs = sorted({t.env for t in trees} | {c.meta["env"] for c in conversations} | set(gold_failed))
    tree_count = Counter(t.env for t in trees)
    pair_count = Counter(p.tree.env for p in pairs)
    counts: dict[str, dict[str, Any]] = {}
    for env in envs:
        mine = [c.meta for c in conversations if c.meta["env"] == env]
        kinds = Counter(m["kind"] for m in mine)
        revision = [m for m in mine if m["kind"] == "revision"]
        flagged = [(m["critic_flagged"], m["divergence"]) for m in revision if m["critic_flagged"] is not None]
        counts[env] = {
            "trees": tree_count[env], "trees_used": len({m["task_id"] for m in mine}), "pairs": pair_count[env],
            "revision": kinds["revision"], "good": kinds["good"], "optimal": kinds["optimal"], "gold": kinds["gold"],
            "gold_failed": gold_failed.get(env, 0),
            "mean_t_prime": _mean([m["t_prime"] for m in revision]),
            "mean_bad_prefix": _mean([m["t_prime"] - m["divergence"] for m in revision]),
            "mean_bad_depth": _mean([m["bad_depth"] for m in revision]),
            "critic_clamped": sum(step <= shared for step, shared in flagged),
        }
    return counts


def write_data(result: BuildResult, out_dir: Path) -> None:
    """Write ``out_dir/data.jsonl`` (the conversations) and ``out_dir/counts.json``, each atomically."""
    out_dir = Path(out_dir)
    write_conversations(out_dir / DATA_FILE, result.conversations)
    atomic_write_json(out_dir / COUNTS_FILE, result.counts)
