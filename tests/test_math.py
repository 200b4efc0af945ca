"""Math envs (GSM8K, MATH): answer grading, shipped data, reset/step semantics, snapshots, the expert."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from coursecorrect.envs import ENVS, make_env
from coursecorrect.envs.checks import check_env
from coursecorrect.envs.math import GSM8KEnv, MATHEnv, gsm8k_correct, last_boxed, math_correct, normalize_math
from coursecorrect.envs.math.env import CONVERTERS, FEEDBACK, INSTRUCTION, data_file
from coursecorrect.errors import EnvError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "math"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{5}.", "5"),
        ("\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{1}{\\sqrt{2}}"),
        ("first \\boxed{1}, then \\boxed{2}", "2"),
        ("\\fbox{7} and \\boxed {8}", "8"),
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
        ("no answer here", None),
        ("\\boxed{3} then cut off \\boxed{4", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    ("response", "answer", "grade"),
    [
        ("\\boxed{1,234}", "1234", 1.0),
        ("\\boxed{1234}", "1234", 1.0),
        ("\\boxed{1,234,567}", "1234567", 1.0),
        ("\\boxed{\\$5}", "5", 1.0),
        ("\\boxed{$5}", "5", 1.0),
        ("\\boxed{5.0}", "5", 1.0),
        ("\\boxed{5.}", "5", 1.0),
        ("\\boxed{18 \\text{ dollars}}", "18", 1.0),
        ("\\boxed{-3}", "-3", 1.0),
        ("\\boxed{25\\%}", "25", 1.0),
        ("\\boxed{1,234}", "1", 0.0),
        ("\\boxed{6}", "5", 0.0),
        ("\\boxed{5} no wait \\boxed{6}", "6", 1.0),
        ("\\boxed{6} no wait \\boxed{5}", "6", 0.0),
        ("The answer is 5.", "5", -1.0),
        ("\\boxed{five}", "5", -1.0),
        ("\\boxed{1,2}", "12", -1.0),
        ("\\boxed{5", "5", -1.0),
    ],
)
def test_gsm8k_correct(response, answer, grade):
    assert gsm8k_correct(response, answer) == grade


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        ("\\boxed{\\tfrac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{\\dfrac{5}{143}}", "\\frac{5}{143}"),
        ("\\boxed{\\frac12}", "\\frac{1}{2}"),
        ("\\boxed{\\frac1{10}}", "\\frac{1}{10}"),
        ("\\boxed{0.5}", "\\frac{1}{2}"),
        ("\\boxed{3/4}", "\\frac{3}{4}"),
        ("\\boxed{2\\sqrt3}", "2\\sqrt{3}"),
        ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "(3,\\frac{\\pi}{2})"),
        ("\\boxed{10080}", "10,\\!080"),
        ("\\boxed{-0.5}", "-\\$0.50"),
        ("\\boxed{5 \\text{ cm}}", "5"),
        ("\\boxed{x = 3}", "3"),
        ("\\boxed{90^\\circ}", "90"),
        ("\\boxed{\\text{(C)}}", "(C)"),
        ("\\boxed{\\$ 18.90}", "18.90"),
    ],
)
def test_math_correct_after_normalisation(response, answer):
    assert math_correct(response, answer) == 1.0


@pytest.mark.parametrize(
    ("response", "answer"),
    [("\\boxed{\\frac{1}{3}}", "\\frac{1}{2}"), ("\\boxed{2\\sqrt{2}}", "2\\sqrt{3}"), ("no box", "1")],
)
def test_math_wrong_or_missing_is_zero(response, answer):
    assert math_correct(response, answer) == 0.0


def test_normalize_math_fixes_fracs_and_sqrt():
    assert normalize_math("\\frac12+\\sqrt2") == "\\frac{1}{2}+\\sqrt{2}"
    assert normalize_math("\\frac{a}2") == "\\frac{a}{2}"
    assert normalize_math("\\left[ 1, 2 \\right)") == "[1,2)"


def test_shipped_data_is_the_conversion_of_the_shared_files():
    for dataset, convert in CONVERTERS.items():
        assert json.loads(gzip.decompress(data_file(dataset).read_bytes())) == convert(SHARED)


def test_counts_and_splits():
    gsm8k, math = GSM8KEnv(), MATHEnv()
    assert len(gsm8k.task_ids("train")) == 7473 and len(gsm8k.task_ids("test")) == 1319
    assert gsm8k.num_tasks == 8792 and gsm8k.task_ids("all") == list(range(8792))
    assert math.num_tasks == 1000 and math.task_ids("test") == list(range(1000)) and math.splits == ("test",)
    with pytest.raises(EnvError, match="unknown split 'train'"):
        math.task_ids("train")


def test_gsm8k_answers_have_no_separators():
    first = json.loads((SHARED / "gsm8k_train.jsonl").open().readline())
    env = GSM8KEnv()
    env.reset(0)
    assert env.problem.question == first["question"]
    assert env.problem.answer == first["answer"].split("####")[-1].strip()
    assert all("," not in p.answer for p in env.problems)


def test_reset_step_and_feedback():
    env = GSM8KEnv()
    question = env.reset(0)
    assert question == env.problem.question and "\\boxed" in env.instruction == INSTRUCTION
    result = env.step("I think it is 3.")
    assert result.reward == 0 and result.info["grade"] == -1 and not result.done
    assert result.observation == FEEDBACK.format(question=question)
    assert result.observation.startswith("The answer is incorrect. Please try again. Here's the question: ")
    result = env.step(f"\\boxed{{{int(env.problem.answer) + 1}}}")
    assert result.reward == 0 and result.info["grade"] == 0 and not result.done
    result = env.step(f"Step by step ... so \\boxed{{{env.problem.answer}}}.")
    assert result.reward == 1 and result.terminated and result.info["grade"] == 1
    assert env.reward == 1 and env.done


def test_turn_limit_truncates():
    env = GSM8KEnv(max_steps=2)
    env.reset(5)
    assert not env.step("\\boxed{-1}").done
    result = env.step("\\boxed{-1}")
    assert result.truncated and not result.terminated and env.max_steps == 2
    assert GSM8KEnv().max_steps == 5


def test_snapshot_copies_state():
    env = MATHEnv()
    env.reset(3)
    env.step("wrong")
    snapshot = env.snapshot()
    assert env.supports_snapshot and snapshot.state == env.problems[3]
    env.reset(7)
    env.restore(snapshot)
    assert env.problem == env.problems[3] and env.actions == ["wrong"]
    assert env.step(env.expert_actions()[0]).reward == 1


@pytest.mark.parametrize("name", ["gsm8k", "math"])
def test_registered_and_keeps_the_contract(name):
    assert name in ENVS.names()
    env = make_env(name, max_steps=5)
    check_env(env)
    assert env.expert_actions() is not None


@pytest.mark.parametrize("cls", [GSM8KEnv, MATHEnv])
def test_expert_solves_sampled_tasks(cls):
    env = cls()
    for task_id in random.Random(0).sample(range(env.num_tasks), 50):
        env.reset(task_id)
        assert env.step(env.expert_actions()[0]).reward == 1


def test_expert_and_grade_need_a_task():
    env = GSM8KEnv()
    assert env.expert_actions() is None
    with pytest.raises(EnvError, match="reset"):
        env.grade("\\boxed{1}")
