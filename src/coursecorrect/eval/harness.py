"""``evaluate``: play a split, append each finished episode to ``episodes.jsonl``, write ``summary.json``.

Episodes are appended (and fsynced) as they finish, so an interrupted evaluation resumes with the tasks
it has not finished; the summary always covers every episode in the file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import Field
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from coursecorrect.agent.runner import AgentConfig, run_episodes
from coursecorrect.config import MAX_COUNT, Config
from coursecorrect.data.conversation import read_conversations
from coursecorrect.envs import EnvConfig
from coursecorrect.eval.metrics import summarize
from coursecorrect.io import append_jsonl, atomic_write_json
from coursecorrect.llm import LLM, LLMConfig
from coursecorrect.rundir import RunDir

EPISODES_FILE = "episodes.jsonl"
SUMMARY_FILE = "summary.json"


class EvalSettings(Config):
    """How a split is played: the part of an evaluation that a run configures once for every env and model."""

    split: str = Field("test", description="task split to play (train, test, all)")
    limit: int | None = Field(None, ge=1, le=MAX_COUNT, description="play only the first N tasks of the split")
    task_ids: list[int] | None = Field(
        None, min_length=1, description="play these tasks instead of the split's (then limit)"
    )
    agent: AgentConfig = Field(default_factory=AgentConfig, description="how the agent samples and keeps context")


class EvalConfig(EvalSettings):
    """An evaluation: which env split, which model, how the agent acts."""

    env: EnvConfig = Field(default_factory=lambda: EnvConfig(max_steps=100), description="the env to play")
    model: LLMConfig = Field(default_factory=LLMConfig, description="the model that plays")


def evaluate(config: EvalConfig, out_dir: Path, llm: LLM | None = None, progress: bool = True) -> dict[str, Any]:
    """Play ``config.split`` (resuming from ``out_dir/episodes.jsonl``) and return the summary. A folder
    started with another env, model, agent or split is refused; ``limit`` may change between runs."""
    run = RunDir.open(out_dir, config.model_copy(update={"limit": None}))
    episodes_path = run.root / EPISODES_FILE
    done = list(read_conversations(episodes_path)) if episodes_path.exists() else []
    with config.env.make() as probe:
        task_ids = (config.task_ids or probe.task_ids(config.split))[: config.limit]
    finished = {c.meta["task_id"] for c in done}
    todo = [t for t in task_ids if t not in finished]
    start = time.perf_counter()
    bar = Progress(
        TextColumn("[bold]episodes"), BarColumn(), MofNCompleteColumn(),
        TextColumn("success {task.fields[successes]}"), TextColumn("{task.fields[tokens]} tokens generated"),
        TimeElapsedColumn(), disable=not progress or not todo,
    )
    with bar:
        task = bar.add_task("eval", total=len(task_ids), completed=len(task_ids) - len(todo), successes=0, tokens=0)
        if todo:
            llm_made = llm is None
            llm = llm or config.model.make()
            try:
                for episode in run_episodes(config.env.make, llm, todo, config.agent):
                    conversation = episode.to_conversation()
                    append_jsonl(episodes_path, conversation.model_dump(mode="json"))
                    done.append(conversation)
                    successes = sum(c.meta["success"] for c in done)
                    bar.update(task, advance=1, successes=successes, tokens=llm.stats.completion_tokens)
            finally:
                if llm_made:
                    llm.close()
    wanted = set(task_ids)
    summary = {
        "env": config.env.name, "model": config.model.model, "split": config.split,
        **summarize([c for c in done if c.meta["task_id"] in wanted]),
        "wall_seconds_this_run": round(time.perf_counter() - start, 2),
    }
    atomic_write_json(run.root / SUMMARY_FILE, summary)
    return summary
