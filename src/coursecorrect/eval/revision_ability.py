"""Revision ability (Agent-R's Table 3): continue the base model's failed episodes from a random step.

Each failed episode of an evaluation (its ``episodes.jsonl``) is cut after a random number of its steps
(seeded, uniform over 1..steps), the env replays the kept actions, and the model under test plays on
from there for at most ``max_rounds`` turns. The score is the share of those continuations that succeed:
every one of them started from a trajectory that had failed.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from pydantic import Field
from rich.progress import track

from coursecorrect.agent.prompt import TASK_MESSAGES
from coursecorrect.agent.runner import AgentConfig, EpisodeStart, run_episodes
from coursecorrect.config import MAX_COUNT, MAX_STEPS, Config, Seed
from coursecorrect.data.conversation import Conversation, read_conversations, write_conversations
from coursecorrect.envs import EnvConfig
from coursecorrect.errors import CourseCorrectError
from coursecorrect.eval.harness import EPISODES_FILE, SUMMARY_FILE
from coursecorrect.eval.metrics import summarize
from coursecorrect.io import atomic_write_json
from coursecorrect.llm import LLM, LLMConfig
from coursecorrect.rundir import RunDir


class RevisionAbilityConfig(Config):
    """Which failed episodes to continue, with which model, for how long."""

    failed: Path = Field(description="an evaluation folder (with episodes.jsonl) whose failures are continued")
    env: EnvConfig = Field(default_factory=EnvConfig, description="the env the episodes were played in")
    model: LLMConfig = Field(default_factory=LLMConfig, description="the model that continues them")
    agent: AgentConfig = Field(default_factory=AgentConfig, description="how the agent samples and keeps context")
    max_rounds: int = Field(50, ge=1, le=MAX_STEPS, description="turns the model may play after the cut")
    limit: int | None = Field(None, ge=1, le=MAX_COUNT, description="continue only the first N failed episodes")
    seed: Seed = Field(0, description="seed of the random cut points")


def failed_episodes(folder: Path) -> list[Conversation]:
    """The failed episodes of an evaluation folder, in task order."""
    path = Path(folder) / EPISODES_FILE
    if not path.is_file():
        raise CourseCorrectError(f"{folder}: no {EPISODES_FILE} (expected an evaluation folder)")
    episodes = [c for c in read_conversations(path) if not c.meta.get("success") and c.meta.get("steps")]
    return sorted(episodes, key=lambda c: c.meta["task_id"])


def cut_points(episodes: list[Conversation], seed: int) -> list[EpisodeStart]:
    """Each episode cut after a random number of its steps (uniform over 1..steps, seeded)."""
    rng = random.Random(seed)
    starts = []
    for episode in episodes:
        actions = episode.meta["actions"]
        keep = rng.randint(1, len(actions))
        messages = episode.messages[: TASK_MESSAGES + 2 * keep]
        starts.append(EpisodeStart(episode.meta["task_id"], tuple(messages), tuple(actions[:keep])))
    return starts


def revision_ability(
    config: RevisionAbilityConfig, out_dir: Path, llm: LLM | None = None, progress: bool = True
) -> dict[str, Any]:
    """Continue ``config.failed``'s failed episodes; write the continuations and a summary to ``out_dir``.
    A finished folder (its summary exists) is read back instead of played again."""
    run = RunDir.open(out_dir, config)
    summary_path = run.root / SUMMARY_FILE
    if summary_path.is_file():
        return json.loads(summary_path.read_text(encoding="utf-8"))
    starts = cut_points(failed_episodes(config.failed)[: config.limit], config.seed)
    longest = max((len(s.actions) for s in starts), default=0)
    env = config.env.model_copy(update={"max_steps": longest + config.max_rounds})
    start = time.perf_counter()
    continued: list[Conversation] = []
    if starts:
        llm_made = llm is None
        llm = llm or config.model.make()
        try:
            episodes = run_episodes(env.make, llm, starts, config.agent, max_rounds=config.max_rounds)
            for episode in track(episodes, total=len(starts), description="revision ability", disable=not progress):
                continued.append(episode.to_conversation())
        finally:
            if llm_made:
                llm.close()
    write_conversations(run.root / EPISODES_FILE, continued)
    stats = summarize(continued)
    summary = {
        "failed_episodes": len(starts),
        "revision_success_rate": stats["success_rate"],
        "average_cut_step": sum(len(s.actions) for s in starts) / len(starts) if starts else 0.0,
        "average_rounds_after_cut": (
            sum(c.meta["steps"] - c.meta.get("start_step", 0) for c in continued) / len(continued) if continued else 0.0
        ),
        "repeated_actions": stats["repeated_actions"],
        "wall_seconds": round(time.perf_counter() - start, 2),
    }
    atomic_write_json(summary_path, summary)
    return summary
