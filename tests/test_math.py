"""Math envs (GSM8K, MATH, reasoning-gym): answer grading, local/hub data with bad-line reports, reset/step
semantics, snapshots, the expert."""

from __future__ import annotations

import json
import random

import pytest

from conftest import SHARED_MATH as SHARED
from coursecorrect.envs import ENVS, make_env
from coursecorrect.envs.checks import check_env
from coursecorrect.envs.math import (
    GSM8KEnv,
    MATHEnv,
    ReasoningGymEnv,
    gsm8k_correct,
    last_boxed,
    math_correct,
    normalize_math,
)
from coursecorrect.envs.math.env import FEEDBACK, INSTRUCTION
from coursecorrect.envs.math.problems import DATA_ENV_VAR
from coursecorrect.errors import EnvError


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


def test_counts_and_splits():
    gsm8k, math = GSM8KEnv(), MATHEnv()
    assert len(gsm8k.task_ids("train")) == 7473 and len(gsm8k.task_ids("test")) == 1319
    assert gsm8k.num_tasks == 8792 and gsm8k.task_ids("all") == list(range(8792))
    assert math.num_tasks == 1000 and math.task_ids("test") == list(range(1000)) and math.splits == ("test",)
    with pytest.raises(EnvError, match="unknown split 'train'"):
        math.task_ids("train")
    assert not gsm8k.skipped and not math.skipped


def test_gsm8k_answers_have_no_separators():
    first = json.loads((SHARED / "gsm8k_train.jsonl").open().readline())
    env = GSM8KEnv()
    env.reset(0)
    assert env.problem.question == first["question"]
    assert env.problem.answer == first["answer"].split("####")[-1].strip()
    assert all("," not in p.answer for p in env.problems)
    assert env.problems[[i for i, p in enumerate(env.problems) if p.answer == "1500"][0]].split in ("train", "test")


def test_data_dir_option_and_missing_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR)
    (tmp_path / "gsm8k_test.jsonl").write_text(json.dumps({"question": "1+1?", "answer": "x\n#### 1,002"}) + "\n")
    env = GSM8KEnv(data_dir=tmp_path)
    assert env.num_tasks == 1 and env.task_ids("train") == [] and env.problems[0].answer == "1002"
    assert not env.needs_download and GSM8KEnv().needs_download
    with pytest.raises(EnvError, match="does not exist"):
        GSM8KEnv(data_dir=tmp_path / "nope").task_ids("all")
    with pytest.raises(EnvError, match="no math_<split>"):
        MATHEnv(data_dir=tmp_path).task_ids("all")


BAD_LINES = [
    json.dumps({"question": "ok?", "answer": "#### 3"}),
    "{not json",
    json.dumps({"question": "no answer field"}),
    json.dumps({"question": "no marker", "answer": "3"}),
    json.dumps({"question": "", "answer": "#### 3"}),
    json.dumps({"question": "not a number", "answer": "#### three"}),
    json.dumps(["a", "list"]),
    json.dumps({"question": "fine too", "answer": "#### -4"}),
]


def test_bad_records_are_reported_with_file_and_line_then_skipped(tmp_path):
    path = tmp_path / "gsm8k_train.jsonl"
    path.write_text("\n".join(BAD_LINES) + "\n\n")
    env = GSM8KEnv(data_dir=tmp_path)
    with pytest.warns(UserWarning, match="skipped 6 unusable record") as caught:
        assert [p.answer for p in env.problems] == ["3", "-4"]
    message = str(caught[0].message)
    reasons = [(2, "not valid JSON"), (3, "missing or empty field 'answer'"), (4, "the answer has no '#### N'"),
               (5, "missing or empty field 'question'"), (6, "the answer 'three' after '####' is not a number"),
               (7, "not a JSON object")]
    for line, reason in reasons:
        assert f"{path}:{line}: {reason}" in message
    assert len(env.skipped) == 6 and env.skipped[0].startswith(f"{path}:2:")


def test_a_line_that_is_not_utf8_is_skipped_and_unicode_line_breaks_stay_inside_their_record(tmp_path):
    path = tmp_path / "gsm8k_train.jsonl"
    sep = json.dumps({"question": "a\u2028b", "answer": "#### 1"}, ensure_ascii=False).encode()
    path.write_bytes(b'{"question": "caf\xe9", "answer": "#### 2"}\n' + sep + b"\n")
    env = GSM8KEnv(data_dir=tmp_path)
    with pytest.warns(UserWarning, match="skipped 1 unusable record"):
        assert [p.question for p in env.problems] == ["a\u2028b"]
    assert env.skipped == [f"{path}:1: not valid JSON (not UTF-8 text)"]


def test_bad_records_are_rejected_with_strict(tmp_path):
    (tmp_path / "gsm8k_train.jsonl").write_text("\n".join(BAD_LINES) + "\n")
    with pytest.raises(EnvError, match=r"(?s)6 unusable record.*gsm8k_train.jsonl:2: not valid JSON"):
        GSM8KEnv(data_dir=tmp_path, strict=True).task_ids("all")
    math_file = tmp_path / "math_test.jsonl"
    math_file.write_text(json.dumps({"problem": "p", "solution": "no box"}) + "\n")
    with pytest.raises(EnvError, match="math_test.jsonl:1: the solution has no"):
        MATHEnv(data_dir=tmp_path, strict=True).task_ids("all")


def test_hub_records_are_converted(monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.delenv(DATA_ENV_VAR)
    rows = {"train": [{"question": "2+2?", "answer": "two and two\n#### 4"}],
            "test": [{"question": "3*3?", "answer": "#### 9"}, {"question": "bad", "answer": "no marker"}]}
    calls = []

    def load_dataset(repo, name=None, split=None):
        calls.append((repo, name, split))
        return datasets.Dataset.from_list(rows[split])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    env = GSM8KEnv()
    with pytest.warns(UserWarning, match=r"openai/gsm8k\[test\]:1: the answer has no '#### N'"):
        loaded = [(p.question, p.answer, p.split) for p in env.problems]
    assert loaded == [("2+2?", "4", "train"), ("3*3?", "9", "test")]
    assert calls == [("openai/gsm8k", "main", "train"), ("openai/gsm8k", "main", "test")]

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(EnvError, match=f"cannot load HuggingFaceH4/MATH-500.*set {DATA_ENV_VAR}"):
        MATHEnv().task_ids("all")


def test_reasoning_gym_splits_are_disjoint_and_graded_by_the_task():
    env = ReasoningGymEnv(train_size=50, test_size=20, seed=3)
    assert len(env.task_ids("train")) == 50 and len(env.task_ids("test")) == 20
    questions = [p.question for p in env.problems]
    assert len(set(questions)) == 70
    assert [p.question for p in ReasoningGymEnv(train_size=50, test_size=20, seed=3).problems] == questions
    assert [p.question for p in ReasoningGymEnv(train_size=50, test_size=20, seed=4).problems] != questions
    env.reset(env.task_ids("test")[0])
    answer = int(env.problem.answer)
    assert env.step("so it is 7").info["grade"] == -1
    assert env.step(f"\\boxed{{{answer + 1}}}").info["grade"] == 0
    result = env.step(f"It is \\boxed{{{answer}}}.")
    assert result.reward == 1 and result.terminated


def test_reasoning_gym_options_and_errors():
    env = ReasoningGymEnv(task="basic_arithmetic", task_config={"min_terms": 3, "max_terms": 3}, test_size=5)
    env.reset(0)
    assert env.problem.question.startswith("Calculate") and env.problem.meta["entry"]["metadata"]["num_terms"] == 3
    question, response = env.demo
    assert question not in [p.question for p in env.problems] and "\\boxed{" in response
    with pytest.raises(EnvError, match="cannot create task 'no_such_task'"):
        ReasoningGymEnv(task="no_such_task").task_ids("all")
    tiny = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}
    with pytest.raises(EnvError, match="distinct questions"):
        ReasoningGymEnv(task_config=tiny, train_size=500, test_size=500).task_ids("all")


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


@pytest.mark.parametrize("name", ["gsm8k", "math", "reasoning-gym"])
def test_registered_and_keeps_the_contract(name):
    assert name in ENVS.names()
    env = make_env(name, max_steps=5)
    check_env(env)
    assert env.expert_actions() is not None


@pytest.mark.parametrize("cls", [GSM8KEnv, MATHEnv, ReasoningGymEnv])
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
