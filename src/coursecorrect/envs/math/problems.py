"""Loading math problems: GSM8K and MATH from local JSONL files or the Hugging Face hub.

No problem set ships with the package. Point an env at a folder holding ``{dataset}_{split}*.jsonl`` files
(``data_dir=`` or the ``COURSECORRECT_MATH_DATA`` environment variable), or leave both unset to download the
dataset with ``datasets`` (``openai/gsm8k``; ``HuggingFaceH4/MATH-500`` for MATH).

A record that cannot be used (not JSON, no question, no gradable answer) is reported with ``file:line``:
by default it is skipped with a warning that lists every such line; with ``strict=True`` loading fails.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coursecorrect.envs.math.grading import last_boxed, parse_number
from coursecorrect.errors import EnvError
from coursecorrect.io import read_jsonl_lines

DATA_ENV_VAR = "COURSECORRECT_MATH_DATA"
HUB = {"gsm8k": ("openai/gsm8k", "main"), "math": ("HuggingFaceH4/MATH-500", None)}


@dataclass(frozen=True)
class Problem:
    """One question with its gold answer (as the grader compares it) and the split it belongs to."""

    question: str
    answer: str
    split: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


class BadRecord(ValueError):
    """A record that cannot become a problem; the message says why."""


def gsm8k_problem(record: dict[str, Any], split: str) -> Problem:
    """A GSM8K record ``{"question", "answer": "... #### N"}``: the answer is N without separators."""
    question, solution = _field(record, "question"), _field(record, "answer")
    if "####" not in solution:
        raise BadRecord("the answer has no '#### N' line")
    answer = solution.rsplit("####", 1)[-1].strip().replace(",", "")
    if parse_number(answer) is None:
        raise BadRecord(f"the answer {answer!r} after '####' is not a number")
    return Problem(question, answer, split)


def math_problem(record: dict[str, Any], split: str) -> Problem:
    """A MATH record ``{"problem", "solution"}`` (answer: its last ``\\boxed{}``) or with an ``"answer"``."""
    question = _field(record, "problem")
    if isinstance(record.get("answer"), str) and record["answer"].strip():
        answer = record["answer"]
    else:
        answer = last_boxed(_field(record, "solution"))
        if answer is None:
            raise BadRecord("the solution has no \\boxed{} answer")
    meta = {key: record[key] for key in ("level", "type", "subject") if key in record}
    return Problem(question, answer, split, meta)


PARSERS: dict[str, Callable[[dict[str, Any], str], Problem]] = {"gsm8k": gsm8k_problem, "math": math_problem}


def _field(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadRecord(f"missing or empty field {key!r}")
    return value


def read_problems(
    path: Path, dataset: str, split: str, strict: bool = False, skipped: list[str] | None = None
) -> list[Problem]:
    """The problems of one JSONL file. Bad lines go to ``skipped`` as ``"file:line: reason"`` (or raise
    ``EnvError`` with ``strict``)."""
    parse, problems, bad = PARSERS[dataset], [], []
    for number, record in read_jsonl_lines(path, bad=bad):
        try:
            if not isinstance(record, dict):
                raise BadRecord("not a JSON object")
            problems.append(parse(record, split))
        except BadRecord as exc:
            bad.append(f"{path}:{number}: {exc}")
    _report(bad, strict, skipped)
    return problems


def _report(bad: list[str], strict: bool, skipped: list[str] | None) -> None:
    if not bad:
        return
    listing = "\n  ".join(bad[:20]) + (f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else "")
    if strict:
        raise EnvError(f"{len(bad)} unusable record(s):\n  {listing}")
    warnings.warn(f"skipped {len(bad)} unusable record(s):\n  {listing}", stacklevel=3)
    if skipped is not None:
        skipped.extend(bad)


def split_files(data_dir: Path, dataset: str, splits: Iterable[str]) -> dict[str, list[Path]]:
    """The JSONL files of each split in ``data_dir``: ``{dataset}_{split}*.jsonl``."""
    if not data_dir.is_dir():
        raise EnvError(f"{dataset}: data folder {data_dir} does not exist")
    files = {split: sorted(data_dir.glob(f"{dataset}_{split}*.jsonl")) for split in splits}
    if not any(files.values()):
        raise EnvError(f"{dataset}: no {dataset}_<split>*.jsonl files in {data_dir}")
    return files


def load_problems(
    dataset: str, splits: tuple[str, ...], data_dir: str | Path | None, strict: bool, skipped: list[str]
) -> list[Problem]:
    """All problems of ``dataset``, split by split: from ``data_dir`` (or ``$COURSECORRECT_MATH_DATA``),
    else from the hub."""
    data_dir = data_dir or os.environ.get(DATA_ENV_VAR)
    if data_dir:
        files = split_files(Path(data_dir), dataset, splits)
        return [p for split in splits for path in files[split] for p in read_problems(path, dataset, split,
                                                                                      strict, skipped)]
    return load_hub(dataset, splits, strict, skipped)


def load_hub(dataset: str, splits: tuple[str, ...], strict: bool, skipped: list[str]) -> list[Problem]:
    """Download ``dataset`` with ``datasets`` (cached by it after the first time)."""
    import datasets

    repo, name = HUB[dataset]
    parse, problems, bad = PARSERS[dataset], [], []
    for split in splits:
        try:
            rows = datasets.load_dataset(repo, name, split=split)
        except Exception as exc:  # noqa: BLE001 - network, auth and missing-split errors all end here
            raise EnvError(
                f"{dataset}: cannot load {repo} ({split}) from the hub: {exc}. Offline, pass data_dir= or set "
                f"{DATA_ENV_VAR} to a folder of {dataset}_<split>.jsonl files"
            ) from None
        for index, record in enumerate(rows):
            try:
                problems.append(parse(record, split))
            except BadRecord as exc:
                bad.append(f"{repo}[{split}]:{index}: {exc}")
    _report(bad, strict, skipped)
    return problems
