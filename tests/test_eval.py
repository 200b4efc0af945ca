"""Evaluation: the loop metric, and end-to-end runs on the tiny random model (resume, determinism, CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from coursecorrect.agent.prompt import episode_start
from coursecorrect.data import read_conversations
from coursecorrect.data.conversation import Conversation, Message, write_conversations
from coursecorrect.envs import EnvConfig, make_env
from coursecorrect.errors import ConfigError
from coursecorrect.eval import EvalConfig, evaluate, repeated_subsequences
from coursecorrect.eval.revision_ability import RevisionAbilityConfig, revision_ability
from coursecorrect.io import read_jsonl
from coursecorrect.llm import LLMConfig
from coursecorrect.llm.base import Completion, SamplingParams
from doubles import ScriptedLLM


@pytest.mark.parametrize(
    ("actions", "length", "repeats"),
    [
        (["a", "b", "c"], 1, 0),
        (["a", "a", "a"], 1, 2),
        (["a", "b", "a", "b", "a", "b"], 2, 3),  # ab, ba, ab, ba, ab: ab twice more, ba once more
        (["a", "b", "a", "b"], 3, 0),
        (["x", None, "x", None], 2, 1),
        ([], 1, 0),
    ],
)
def test_repeated_subsequences(actions, length, repeats):
    assert repeated_subsequences(actions, length) == repeats


def _config(limit: int, **agent) -> EvalConfig:
    return EvalConfig(
        env=EnvConfig(max_steps=2), model=LLMConfig(model="tiny-random"), limit=limit,
        agent={"batch_size": 3, "max_new_tokens": 12, **agent},
    )


def test_eval_resumes_and_is_deterministic(tmp_path):
    first = evaluate(_config(2), tmp_path / "a", progress=False)
    assert first["episodes"] == 2
    more = evaluate(_config(4), tmp_path / "a", progress=False)
    episodes = list(read_conversations(tmp_path / "a" / "episodes.jsonl"))
    assert more["episodes"] == 4 and [e.meta["task_id"] for e in episodes] == [0, 1, 2, 3]
    again = evaluate(_config(4), tmp_path / "b", progress=False)
    replay = list(read_conversations(tmp_path / "b" / "episodes.jsonl"))
    key = {e.meta["task_id"]: e.messages for e in episodes}
    assert all(key[e.meta["task_id"]] == e.messages for e in replay), "greedy decoding repeats exactly"
    assert {k: v for k, v in again.items() if k != "wall_seconds_this_run"} == {
        k: v for k, v in more.items() if k != "wall_seconds_this_run"
    }


def test_a_sampling_eval_resumed_after_a_crash_mid_append_equals_an_uninterrupted_one(tmp_path):
    """Each turn samples with a seed of its own task and turn, and a line torn by the crash is cut away."""
    config = _config(6, temperature=1.0)
    evaluate(config, tmp_path / "whole", progress=False)
    lines = (tmp_path / "whole" / "episodes.jsonl").read_text().splitlines()
    evaluate(_config(2, temperature=1.0), tmp_path / "resumed", progress=False)
    log = tmp_path / "resumed" / "episodes.jsonl"
    with log.open("a") as handle:
        handle.write(lines[2][: len(lines[2]) // 2])  # killed while appending the third episode
    evaluate(config, tmp_path / "resumed", progress=False)
    whole = {json.loads(line)["meta"]["task_id"]: json.loads(line)["messages"] for line in lines}
    resumed = list(read_jsonl(log))  # raises if the torn line were still there
    assert [r["meta"]["task_id"] for r in resumed] == list(range(6))
    assert {r["meta"]["task_id"]: r["messages"] for r in resumed} == whole
    assert len({json.dumps(messages[3:]) for messages in whole.values()}) == 6  # the samples do differ


class SeedLLM:
    """Answers with an action naming the seed it was asked to sample with."""

    name = "seeds"

    def __init__(self) -> None:
        self.stats = ScriptedLLM(str).stats

    def generate(self, conversations, params: SamplingParams) -> list[list[Completion]]:
        seeds = params.conversation_seeds(len(conversations), lambda: 0)
        return [[Completion(f"Action: get {seed} wheat", 10, 3)] for seed in seeds]

    def close(self) -> None:
        pass


def _failure(task_id: int, steps: int) -> Conversation:
    env = make_env("textcraft")
    messages = episode_start(env.instruction, env.reset(task_id))
    for _ in range(steps):
        messages += [Message(role="assistant", content="Action: inventory", loss=True),
                     Message(role="user", content=env.step("inventory").observation)]
    meta = {"task_id": task_id, "success": False, "steps": steps, "actions": ["inventory"] * steps}
    return Conversation(messages=messages, meta=meta)


def test_revision_ability_samples_the_same_however_episodes_are_batched(tmp_path):
    write_conversations(tmp_path / "eval" / "episodes.jsonl", [_failure(t, 2 + t % 3) for t in range(5)])
    played = {}
    for batch_size in (1, 4):
        config = RevisionAbilityConfig(failed=tmp_path / "eval", env=EnvConfig(max_steps=10), max_rounds=3,
                                       agent={"batch_size": batch_size, "temperature": 1.0})
        revision_ability(config, tmp_path / f"b{batch_size}", llm=SeedLLM(), progress=False)
        played[batch_size] = sorted(read_jsonl(tmp_path / f"b{batch_size}" / "episodes.jsonl"),
                                    key=lambda r: r["meta"]["task_id"])
    assert played[1] == played[4]
    said = [m["content"] for r in played[1] for m in r["messages"] if m["content"].startswith("Action: get")]
    assert len(set(said)) == len(said) == 5 * 3  # a seed of its own for every turn after the cut


def test_eval_refuses_a_folder_of_another_config(tmp_path):
    evaluate(_config(1), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="different config"):
        evaluate(_config(1, temperature=0.7), tmp_path, progress=False)


def test_eval_counts_successes(tmp_path):
    llm = ScriptedLLM(lambda conversation: "Action: get 3 wheat" if len(conversation) == 3
                      else "Action: craft 1 bread using 3 wheat")
    config = EvalConfig(env=EnvConfig(max_steps=5), split="all", limit=13)
    summary = evaluate(config, tmp_path, llm=llm, progress=False)
    assert summary["episodes"] == 13 and summary["success_rate"] == pytest.approx(1 / 13)  # task 12 is bread


def test_eval_cli_end_to_end(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "coursecorrect.cli", "eval", "--model", "tiny-random", "--limit", "2",
               "--max-steps", "2", "--max-new-tokens", "8", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 2 and summary["average_steps"] == 2
    assert "success_rate" in result.stdout and str(out) in result.stdout
    offline = {**os.environ, "HF_HUB_OFFLINE": "1"}  # fail at once instead of retrying an unreachable hub
    bad = subprocess.run([*command[:4], "--model", "no-such-model-dir/x", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=600, check=False, env=offline)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("error: ")
