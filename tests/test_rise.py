"""RISE: the dialogue, rollouts (best-of-N, teacher turns, stop at success, resume), RWR examples and their
weights in the loss, turn-wise metrics, the CLI and the resumable run."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from coursecorrect.cli import app
from coursecorrect.envs import EnvConfig
from coursecorrect.envs.math import FEEDBACK
from coursecorrect.errors import ConfigError, CourseCorrectError
from coursecorrect.llm.base import BackendStats, Completion, SamplingParams
from coursecorrect.llm.models import TINY_RANDOM, load_model_and_tokenizer
from coursecorrect.rise.collect import RiseCollectConfig, collect_rollouts
from coursecorrect.rise.data import RiseDataConfig, kept_turns, rise_examples
from coursecorrect.rise.evaluate import RiseEvalConfig, rise_evaluate
from coursecorrect.rise.metrics import majority_correct, parallel_metrics, sequential_metrics
from coursecorrect.rise.parts import read_parts, run_in_parts
from coursecorrect.rise.prompt import is_degenerate, rise_messages
from coursecorrect.rise.run import RiseRunConfig, run_rise
from coursecorrect.train.collate import SFTCollator, weighted_nll
from coursecorrect.train.tokenize import IGNORE_INDEX, tokenize_conversation

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ANSWERS = [0, 3, 9, 2]


@pytest.fixture
def gsm8k_dir(tmp_path: Path) -> Path:
    """A small GSM8K-format data folder: train problems whose answers are ANSWERS."""
    folder = tmp_path / "data"
    folder.mkdir()
    lines = [json.dumps({"question": f"What is {a} + 0?", "answer": f"easy\n#### {a}"}) for a in ANSWERS]
    (folder / "gsm8k_train.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "gsm8k_test.jsonl").write_text("\n".join(lines) + "\n")
    return folder


class SampleLLM:
    """Test double: sample j of every conversation answers ``answer(j, attempts)``."""

    def __init__(self, name: str, answer) -> None:
        self.name, self.answer, self.stats, self.calls = name, answer, BackendStats(), []

    def generate(self, conversations: Sequence, params: SamplingParams) -> list[list[Completion]]:
        self.calls.append((len(conversations), params.n, params.seeds))
        out = []
        for conversation in conversations:
            attempts = sum(m["role"] == "assistant" for m in conversation) - 1  # minus the demo's
            texts = [f"{self.name}: \\boxed{{{self.answer(j, attempts)}}}" for j in range(params.n)]
            out.append([Completion(text, 10, 5) for text in texts])
        return out

    def close(self) -> None:
        pass


def _collect_config(gsm8k_dir: Path, **updates) -> RiseCollectConfig:
    data = {"env": {"name": "gsm8k", "max_steps": 5, "options": {"data_dir": str(gsm8k_dir)}},
            "model": {"model": "tiny-random"}, "turns": [{"num_samples": 1}, {"num_samples": 4}], **updates}
    return RiseCollectConfig.model_validate(data)


def test_dialogue_layout_and_window():
    messages = rise_messages("Solve.", ("1+1?", "\\boxed{2}"), "2+2?", ["\\boxed{5}", "\\boxed{3}"])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user", "assistant",
                                             "user"]
    assert messages[3]["content"] == "2+2?" and messages[-1]["content"] == FEEDBACK.format(question="2+2?")
    windowed = rise_messages("Solve.", None, "2+2?", ["a", "b", "c"], window=1)
    assert [m["content"] for m in windowed][:3] == ["Solve.", "2+2?", "c"] and len(windowed) == 4


def test_degenerate_repetition():
    assert is_degenerate("the answer is " * 20)
    assert not is_degenerate("the answer is 5")
    assert not is_degenerate(" ".join(f"step {i} adds {i + 1} to the total" for i in range(10)))


def test_rollouts_keep_the_best_sample_route_teacher_turns_and_stop_at_success(gsm8k_dir, tmp_path):
    learner = SampleLLM("learner", lambda j, attempts: j)  # sample j answers j
    teacher = SampleLLM("teacher", lambda j, attempts: 9)
    config = _collect_config(gsm8k_dir, teacher={"model": "big"}, chunk_size=2, turns=[
        {"num_samples": 1}, {"num_samples": 4}, {"model": "teacher", "num_samples": 2}])
    import coursecorrect.rise.collect as collect_module

    original = collect_module.LLMConfig.make
    collect_module.LLMConfig.make = lambda self: teacher  # the teacher is built from its config
    try:
        summary = collect_rollouts(config, tmp_path / "out", llm=learner, progress=False)
    finally:
        collect_module.LLMConfig.make = original
    records = {r.task_id: r.model_dump() for r in read_parts(tmp_path / "out" / "rollouts")}
    grades = {t: [turn["grade"] for turn in r["turns"]] for t, r in records.items()}
    assert grades == {0: [1], 1: [0, 1], 2: [0, 0, 1], 3: [0, 1]}
    assert records[1]["turns"][1]["response"] == "learner: \\boxed{3}"  # the correct one of 4 samples
    assert records[1]["turns"][1]["correct_samples"] == 1 and records[1]["turns"][1]["samples"] == 4
    assert records[2]["turns"][1]["response"] == "learner: \\boxed{0}"  # all wrong: the first sample
    assert records[2]["turns"][2]["model"] == "big" and records[2]["stop"] == "solved"
    assert summary["solved_at_turn"] == [1, 2, 1] and summary["solved_after_a_wrong_turn"] == 3
    assert [c[0] for c in learner.calls] == [2, 1, 2, 2]  # chunks of 2: turn 0 both, turn 1 the unsolved
    seeds = [seed for call in learner.calls for seed in call[2]]
    assert len(set(seeds)) == len(seeds) == 7  # every problem's every turn its own seed


def test_teacher_turns_need_a_teacher(gsm8k_dir):
    with pytest.raises(ValueError, match="no teacher model"):
        _collect_config(gsm8k_dir, turns=[{"model": "teacher"}])
    with pytest.raises(ConfigError, match="RISE needs a math env"):
        collect_rollouts(RiseCollectConfig(env=EnvConfig(name="textcraft")), Path("/tmp/unused"), llm=None)


def test_collection_is_deterministic_batch_invariant_and_resumes_to_the_same_records(gsm8k_dir, tmp_path):
    config = _collect_config(gsm8k_dir, max_new_tokens=8, chunk_size=2, turns=[
        {"num_samples": 1, "temperature": 1.0}, {"num_samples": 3, "temperature": 1.0}])
    collect_rollouts(config, tmp_path / "a", progress=False)
    collect_rollouts(config, tmp_path / "b", progress=False)
    first = (tmp_path / "a" / "rollouts" / "part-00001.jsonl").read_text()
    assert first == (tmp_path / "b" / "rollouts" / "part-00001.jsonl").read_text()
    (tmp_path / "b" / "rollouts" / "part-00001.jsonl").unlink()  # a crash lost the second chunk
    summary = collect_rollouts(config, tmp_path / "b", progress=False)
    assert summary["problems_this_run"] == 2 and summary["problems"] == 4
    records = read_parts(tmp_path / "a" / "rollouts")
    assert records == read_parts(tmp_path / "b" / "rollouts")
    collect_rollouts(config.model_copy(update={"chunk_size": 4}), tmp_path / "c", progress=False)
    assert read_parts(tmp_path / "c" / "rollouts") == records  # the same records, whatever shares a call
    other_seed = config.model_copy(update={"seed": 1})
    collect_rollouts(other_seed, tmp_path / "d", progress=False)
    assert read_parts(tmp_path / "d" / "rollouts") != records


def _rollout(grades: list[float], task_id: int = 0) -> dict:
    return {"task_id": task_id, "question": "q?", "instruction": "Solve.", "demo": ["d?", "\\boxed{1}"],
            "turns": [{"response": f"attempt {t}: \\boxed{{{g}}}", "grade": g} for t, g in enumerate(grades)]}


@pytest.mark.parametrize(("criterion", "rewards", "kept"), [
    ("all", [0, 0, 1], [0, 1, 2]),
    ("success", [0, 1, 0, 1], [1, 3]),
    ("best", [0, 1, 0, 1], [1]),
    ("better", [0, 0, 1], [2]),
    ("better", [1], [0]),
    ("better", [-1, 0, 1], [1, 2]),
])
def test_turn_filters(criterion, rewards, kept):
    assert kept_turns(rewards, criterion) == kept


def test_examples_train_only_the_last_response_with_exp_weights():
    examples, counts = rise_examples([_rollout([-1, 0, 1])], RiseDataConfig())
    assert [e.weight for e in examples] == pytest.approx([1.0, 1.0, math.exp(2.5)])
    last = examples[2]
    assert [m.loss for m in last.messages].count(True) == 1 and last.messages[-1].loss
    assert last.messages[-1].content == "attempt 2: \\boxed{1}" and last.meta["turn"] == 2
    assert [m.content for m in last.messages if m.role == "assistant"][1:3] == ["attempt 0: \\boxed{-1}",
                                                                                 "attempt 1: \\boxed{0}"]
    assert counts["examples_per_turn"] == [1, 1, 1] and counts["correct_examples"] == 1
    penalised, _ = rise_examples([_rollout([-1, 0, 1])], RiseDataConfig(penalize_unparseable=True))
    assert penalised[0].weight == pytest.approx(math.exp(-2.5))
    centred, _ = rise_examples([_rollout([0, 0, 1])], RiseDataConfig(weighting="advantage"))
    assert [e.weight for e in centred] == pytest.approx([math.exp(-1 / 1.2)] * 2 + [math.exp((2 / 3) / 0.4)])


@pytest.mark.parametrize("grade", [math.inf, math.nan, "1", None])
def test_a_grade_that_is_not_a_finite_number_is_refused(grade):
    with pytest.raises(CourseCorrectError, match=r"rollout of task 7, turn 1: grade .* is not a finite number"):
        rise_examples([_rollout([0, grade], task_id=7)], RiseDataConfig())


def test_a_weight_that_overflows_is_refused():
    with pytest.raises(CourseCorrectError, match=r"rollout of task 0, turn 1: its weight .* overflows.*raise tau"):
        rise_examples([_rollout([0, 1])], RiseDataConfig(tau=1e-3))
    assert len(rise_examples([_rollout([0, 1])], RiseDataConfig(tau=1e-3, weighting="uniform"))[0]) == 2


def test_duplicates_are_dropped():
    twice = [_rollout([0, 1], task_id=0), _rollout([0, 1], task_id=0)]
    examples, counts = rise_examples(twice, RiseDataConfig())
    assert len(examples) == 2 and counts["duplicates_dropped"] == 2
    assert len(rise_examples(twice, RiseDataConfig(dedup=False))[0]) == 4


def test_loss_contribution_of_a_correct_turn_is_exp_one_over_tau_times_a_wrong_one():
    """Per-token losses computed by hand on a tiny model; the trainer's loss weighs them by exp(r/τ)."""
    model, tokenizer = load_model_and_tokenizer(TINY_RANDOM, dtype="float32", device="cpu")
    examples, _ = rise_examples([_rollout([0, 1])], RiseDataConfig())
    wrong, right = (tokenize_conversation(tokenizer, e, 4096) for e in examples)

    def summed_nll(example) -> tuple[float, int]:
        ids = torch.tensor([example["input_ids"]])
        labels = torch.tensor(example["labels"][1:])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1]
        keep = labels != IGNORE_INDEX
        return float(F.cross_entropy(logits[keep], labels[keep], reduction="sum")), int(keep.sum())

    (s_wrong, n_wrong), (s_right, n_right) = summed_nll(wrong), summed_nll(right)
    assert n_right == len(tokenizer("attempt 1: \\boxed{1}", add_special_tokens=False)["input_ids"]) + 1  # + eos
    with torch.no_grad():
        total, count = weighted_nll(model, SFTCollator(tokenizer.pad_token_id)([wrong, right]))
    assert count == n_wrong + n_right
    assert right["weight"] / wrong["weight"] == pytest.approx(math.exp(1 / 0.4))
    assert float(total) == pytest.approx(1.0 * s_wrong + math.exp(2.5) * s_right, rel=1e-5)


def test_majority_vote_ties_go_to_the_first_answer():
    assert majority_correct([{"key": "1", "grade": 0}, {"key": "2", "grade": 1}, {"key": "2", "grade": 1}])
    assert not majority_correct([{"key": "1", "grade": 0}, {"key": "2", "grade": 1}])
    assert not majority_correct([{"key": None, "grade": -1}])
    assert majority_correct([{"key": None, "grade": -1}, {"key": None, "grade": -1}, {"key": "7", "grade": 1}])


def test_turn_wise_metrics(gsm8k_dir, tmp_path):
    per_turn = {0: 99, 1: None, 2: 99, 3: 98, 4: 99}  # None: the right answer at turn 2 only

    def answer(j, attempts):
        return "{a}" if per_turn[attempts] is None else per_turn[attempts]

    class Right(SampleLLM):
        def generate(self, conversations, params):
            outs = super().generate(conversations, params)
            for conv, samples in zip(conversations, outs, strict=True):
                truth = conv[3]["content"].split()[2]  # "What is A + 0?"
                for k, c in enumerate(samples):
                    samples[k] = Completion(c.text.replace("{a}", truth), 10, 5)
            return outs

    config = RiseEvalConfig.model_validate({
        "env": {"name": "gsm8k", "options": {"data_dir": str(gsm8k_dir)}}, "model": {"model": "double"},
        "split": "test", "turns": 5, "parallel_samples": 3})
    summary = rise_evaluate(config, tmp_path / "eval", llm=Right("m", answer), progress=False)
    assert summary["accuracy_per_turn"] == [0.0, 1.0, 0.0, 0.0, 0.0]
    assert summary["m1@t1"] == 0.0 and summary["p1@t5"] == 1.0 and summary["m1@t5"] == 0.0
    assert summary["m3@t1"] == 0.0 and (tmp_path / "eval" / "accuracy.png").stat().st_size > 1000
    records = [r.model_dump() for r in read_parts(tmp_path / "eval" / "sequential")]
    assert all(len(r["turns"]) == 5 for r in records)  # told "incorrect" even after a correct turn
    assert sequential_metrics(records, 5)["problems"] == 4
    assert parallel_metrics(read_parts(tmp_path / "eval" / "parallel"), 3)["p3@t1"] == 0.0


def test_bad_rollout_lines_are_reported_with_file_and_line(tmp_path):
    path = tmp_path / "rollouts.jsonl"
    path.write_text(json.dumps(_rollout([0, 1])) + "\n{oops\n" + json.dumps({"task_id": 1}) + "\n")
    with pytest.warns(UserWarning, match="(?s)skipped 2.*rollouts.jsonl:2: not valid JSON.*:3: missing field"):
        assert len(read_parts(path)) == 1
    with pytest.raises(CourseCorrectError, match="rollouts.jsonl:2"):
        read_parts(path, strict=True)
    result = CliRunner().invoke(app, ["rise", "train", "--rollouts", str(path), "--strict", "--build-only",
                                      "--out", str(tmp_path / "t")])
    assert result.exit_code != 0 and "rollouts.jsonl:2: not valid JSON" in str(result.exception)


OLD_LINE = (  # a parallel-evaluation record as the dict-based collector wrote it
    '{"task_id": 3, "question": "What is 2 + 0?", "answer": "2", "env": "gsm8k", "instruction": "Solve.", "demo": '
    '["d?", "\\boxed{1}"], "turns": [{"response": "\\boxed{5}", "grade": 0.0, "key": "5", "model": "m", "samples": '
    '2, "correct_samples": 0, "degenerate_samples": 0, "finish_reason": "length", "all": [{"response": "\\boxed{5}", '
    '"grade": 0.0, "key": "5"}, {"response": "no answer é", "grade": -1.0, "key": null}]}], "solved": false, '
    '"stop": "turns"}'
)


def test_rollout_records_load_old_lines_and_write_them_back_unchanged(tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_text(OLD_LINE + "\n" + json.dumps(_rollout([0, 1], task_id=4)) + "\n", encoding="utf-8")
    old, minimal = read_parts(path, strict=True)
    assert old.turns[0].all[1].key is None and old.turns[0].finish_reason == "length"
    assert minimal.turns[1].grade == 1 and minimal.stop == "turns" and minimal.turns[0].all == []
    run_in_parts(tmp_path / "parts", [3], 1, lambda chunk: [old], "rollouts", progress=False)
    assert (tmp_path / "parts" / "part-00000.jsonl").read_text(encoding="utf-8") == OLD_LINE + "\n"
    assert '"grade": 1, "key": null' in json.dumps(minimal.model_dump())  # an int grade is written as it came


def test_an_unusable_rollout_record_is_named_by_file_line_and_turn(tmp_path):
    path = tmp_path / "rollouts.jsonl"
    lines = [_rollout([0, math.inf], task_id=7), {**_rollout([0], task_id=8), "stop": "bored"}, _rollout([0])]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.warns(UserWarning, match=r"(?s)skipped 2.*rollouts.jsonl:1, turn 1: grade inf is not a finite "
                                         r"number.*rollouts.jsonl:2: stop: Input should be"):
        assert [r.task_id for r in read_parts(path)] == [0]
    with pytest.raises(CourseCorrectError, match=r"rollouts.jsonl:1, turn 1: grade inf is not a finite number"):
        read_parts(path, strict=True)


def test_cli_collect_train_eval_on_tiny_random(tmp_path):
    runner = CliRunner()
    common = ["--model", "tiny-random", "--max-new-tokens", "8", "--no-progress"]
    result = runner.invoke(app, ["rise", "collect", "--limit", "3", "--samples", "1", "--samples", "2",
                                 "--out", str(tmp_path / "c"), *common])
    assert result.exit_code == 0, result.output
    assert len(read_parts(tmp_path / "c" / "rollouts")) == 3
    result = runner.invoke(app, ["rise", "train", "--rollouts", str(tmp_path / "c" / "rollouts"), "--model",
                                 "tiny-random", "--max-steps", "1", "--out", str(tmp_path / "t"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "t" / "model" / "config.json").is_file()
    assert len((tmp_path / "t" / "data.jsonl").read_text().splitlines()) == 6
    result = runner.invoke(app, ["rise", "eval", "--limit", "2", "--turns", "2", "--parallel-samples", "2",
                                 "--out", str(tmp_path / "e"), *common[:-1], "--model", str(tmp_path / "t" / "model"),
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "e" / "summary.json").read_text())["problems"] == 2


def test_run_iterates_resumes_and_reports(tmp_path):
    config = RiseRunConfig.model_validate({
        "model": {"model": "tiny-random"}, "iterations": 1,
        "collect": {"limit": 2, "max_new_tokens": 8, "turns": [{"num_samples": 1}, {"num_samples": 2}]},
        "train": {"max_steps": 1, "model": "tiny-random"},
        "eval": {"limit": 2, "turns": 2, "parallel_samples": 2, "max_new_tokens": 8},
    })
    report = run_rise(config, tmp_path / "run", progress=False)
    text = report.read_text()
    assert "| 0 | tiny-random |" in text and "| 1 | iter_1/train/model |" in text
    assert (tmp_path / "run" / "accuracy.png").is_file()
    done = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("DONE.json")}
    assert len(done) == 5
    run_rise(config, tmp_path / "run", progress=False)  # nothing left to do: no stage runs again
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("DONE.json")} == done
    with pytest.raises(ValueError, match="needs backend 'transformers'"):
        RiseRunConfig.model_validate({"model": {"backend": "openai", "model": "x"}})
