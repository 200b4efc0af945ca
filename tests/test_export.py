"""Exports keep the loss flags: HF datasets, LLaMA-Factory ShareGPT (split / loss_mask) and xtuner."""

from __future__ import annotations

import json

import pytest

from coursecorrect.data import Conversation, Message
from coursecorrect.data.export import export, to_hf_dataset, to_sharegpt, to_xtuner
from coursecorrect.errors import CourseCorrectError

FLAGS = [False, False, True, False, True, True]  # "Ok.", a bad step, the revision, ... (any pattern)


def _conversation(flags=FLAGS, system: str | None = None, weight: float = 1.0) -> Conversation:
    messages = [Message(role="system", content=system)] if system else []
    for i, flag in enumerate(flags):
        messages += [Message(role="user", content=f"u{i}"), Message(role="assistant", content=f"a{i}", loss=flag)]
    messages.append(Message(role="user", content="final observation"))
    return Conversation(messages=messages, weight=weight, meta={"kind": "revision", "t_prime": 2})


def test_xtuner_output_with_loss_mirrors_the_flags():
    (record,) = to_xtuner([_conversation()])
    turns = record["conversation"]
    assert [t["output_with_loss"] for t in turns] == FLAGS
    assert [(t["input"], t["output"]) for t in turns] == [(f"u{i}", f"a{i}") for i in range(len(FLAGS))]
    assert all(set(t) == {"system", "input", "output", "output_with_loss"} and t["system"] == "" for t in turns)
    (with_system,) = to_xtuner([_conversation(system="Be brief.")])
    assert [t["system"] for t in with_system["conversation"]] == ["Be brief."] + [""] * (len(FLAGS) - 1)


def test_sharegpt_split_trains_each_flagged_turn_once_in_its_context():
    records = to_sharegpt([_conversation()])
    trained = [i for i, flag in enumerate(FLAGS) if flag]
    assert len(records) == len(trained)
    for record, i in zip(records, trained, strict=True):
        messages = record["conversations"]
        assert messages[-1] == {"from": "gpt", "value": f"a{i}"}, "mask_history trains the last turn only"
        assert [m["from"] for m in messages] == ["human", "gpt"] * (i + 1)
        assert [m["value"] for m in messages[::2]] == [f"u{k}" for k in range(i + 1)]
        assert "loss_mask" not in record and "system" not in record


def test_sharegpt_loss_mask_has_one_entry_per_message():
    (record,) = to_sharegpt([_conversation(system="Be brief.")], style="loss_mask")
    assert record["system"] == "Be brief."
    assert len(record["loss_mask"]) == len(record["conversations"]) == 2 * len(FLAGS)
    assert record["loss_mask"][1::2] == [int(f) for f in FLAGS] and not any(record["loss_mask"][::2])
    assert [m["from"] for m in record["conversations"]] == ["human", "gpt"] * len(FLAGS)


def test_formats_refuse_what_they_cannot_keep():
    with pytest.raises(CourseCorrectError, match="weight 0.5"):
        to_xtuner([_conversation(weight=0.5)])
    with pytest.raises(CourseCorrectError, match="weight"):
        to_sharegpt([_conversation(weight=2.0)])
    broken = Conversation(messages=[Message(role="user", content="a"), Message(role="user", content="b"),
                                    Message(role="assistant", content="c", loss=True)])
    with pytest.raises(CourseCorrectError, match="conversation 2: messages must alternate"):
        to_xtuner([_conversation(), broken])
    with pytest.raises(CourseCorrectError, match="no assistant message"):
        to_sharegpt([Conversation(messages=[Message(role="user", content="a")])])


def test_hf_dataset_round_trip(tmp_path):
    import datasets

    conversations = [_conversation(), _conversation(flags=[True], weight=0.25)]
    dataset = to_hf_dataset(conversations)
    assert dataset.column_names == ["messages", "weight", "meta"] and len(dataset) == 2
    assert [m["loss"] for m in dataset[0]["messages"]] == [m.loss for m in conversations[0].messages]
    assert dataset[1]["weight"] == 0.25 and json.loads(dataset[0]["meta"]) == conversations[0].meta
    assert export(conversations, "hf", tmp_path / "hf") == 2
    loaded = datasets.load_from_disk(str(tmp_path / "hf"))
    back = [Conversation(messages=r["messages"], weight=r["weight"], meta=json.loads(r["meta"])) for r in loaded]
    assert back == conversations
    assert len(to_hf_dataset([])) == 0


def test_export_writes_json_or_jsonl(tmp_path):
    conversations = [_conversation(), _conversation(flags=[True, True])]
    assert export(conversations, "xtuner", tmp_path / "x.json") == 2
    assert json.loads((tmp_path / "x.json").read_text()) == to_xtuner(conversations)
    assert export(conversations, "sharegpt", tmp_path / "s.jsonl") == 3 + 2
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == to_sharegpt(conversations)
    assert export(conversations, "sharegpt", tmp_path / "m.json", sharegpt_style="loss_mask") == 2
    with pytest.raises(CourseCorrectError, match="unknown export format"):
        export(conversations, "csv", tmp_path / "c.csv")  # type: ignore[arg-type]
