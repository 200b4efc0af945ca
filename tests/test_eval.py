"""Evaluation: the loop metric, and end-to-end runs on the tiny random model (resume, determinism, CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from coursecorrect.data import read_conversations
from coursecorrect.envs import EnvConfig
from coursecorrect.errors import ConfigError
from coursecorrect.eval import EvalConfig, evaluate, repeated_subsequences
from coursecorrect.llm import LLMConfig
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
