"""SFT: exact loss masks on both chat templates, weighted loss, packing, data mixing, training end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import typer
from transformers import AutoTokenizer, TrainingArguments
from typer.testing import CliRunner

from coursecorrect.cli.train import train_command
from coursecorrect.config import validate_config
from coursecorrect.data.conversation import Conversation, Message, read_conversations, write_conversations
from coursecorrect.data.preferences import PreferencePair
from coursecorrect.errors import ConfigError, CourseCorrectError
from coursecorrect.io import remove_temporaries, temp_dir_beside
from coursecorrect.llm.base import SamplingParams
from coursecorrect.llm.models import SMOLLM2, TINY_RANDOM, load_model_and_tokenizer, resolve_model
from coursecorrect.llm.transformers_backend import TransformersLLM
from coursecorrect.train import collate, sft
from coursecorrect.train.collate import SFTCollator, pack_examples, supervised_logits, weighted_nll
from coursecorrect.train.dpo import DPOStageConfig, train_dpo
from coursecorrect.train.finite import TrainingError
from coursecorrect.train.sft import (
    SUMMARY_FILE,
    TrainConfig,
    _save_merged,
    _WeightedTrainer,
    mix_conversations,
    read_mix_data,
    train_sft,
)
from coursecorrect.train.tokenize import IGNORE_INDEX, tokenize_conversation, tokenize_conversations
from test_models import SMOLLM2_TEMPLATE

ASSISTANT = ["Thought: I need logs first.\nAction: get 1 oak log", "Action: craft 4 oak planks using 1 oak log",
             "Thought: Done.\nAction: inventory"]


def _conversation(flags: list[bool], weight: float = 1.0, system: bool = False) -> Conversation:
    messages = [Message(role="system", content="You craft things.")] if system else []
    messages.append(Message(role="user", content="Task: craft 4 oak planks"))
    for i, (content, flag) in enumerate(zip(ASSISTANT, flags, strict=False)):
        messages += [Message(role="assistant", content=content, loss=flag),
                     Message(role="user", content=f"Observation {i}: Got 1 oak log")]
    return Conversation(messages=messages, weight=weight)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = load_model_and_tokenizer(TINY_RANDOM, dtype="float32", device="cpu")
    return model.train(), tokenizer  # train mode: dropout is 0, and it is the mode the loss runs in


@pytest.fixture(scope="module", params=[TINY_RANDOM, SMOLLM2])
def tokenizer(request):
    """Only the tokenizer: cheap once the model folder is cached (SmolLM2's conversion takes ~20 s once)."""
    return AutoTokenizer.from_pretrained(resolve_model(request.param))


def _runs(labels: list[int]) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, label in enumerate([*labels, IGNORE_INDEX]):
        if label != IGNORE_INDEX and start is None:
            start = i
        elif label == IGNORE_INDEX and start is not None:
            runs, start = [*runs, (start, i)], None
    return runs


@pytest.mark.parametrize("flags", [[False, True, False], [True, False, True], [True, True, True]])
@pytest.mark.parametrize("system", [False, True])
def test_golden_supervised_tokens(tokenizer, flags: list[bool], system: bool) -> None:
    example = tokenize_conversation(tokenizer, _conversation(flags, system=system), max_length=4096)
    ids, labels = example["input_ids"], example["labels"]
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    flagged = [c for c, f in zip(ASSISTANT, flags, strict=True) if f]
    expected = [tokenizer(c, add_special_tokens=False).input_ids + [im_end] for c in flagged]
    assert [label for label in labels if label != IGNORE_INDEX] == sum(expected, [])
    # Each flagged message is one run: right after its role header, ending at <|im_end|>, the "\n" after it free.
    header = tokenizer("<|im_start|>assistant\n", add_special_tokens=False).input_ids
    newline = tokenizer("\n", add_special_tokens=False).input_ids
    runs = _runs(labels)
    assert len(runs) == len(flagged)
    for (start, end), tokens in zip(runs, expected, strict=True):
        assert ids[start:end] == labels[start:end] == tokens
        assert ids[start - len(header) : start] == header and ids[end : end + len(newline)] == newline
    text = tokenizer.apply_chat_template(_conversation(flags, system=system).chat(), tokenize=False)
    assert example["weight"] == 1.0 and ids == tokenizer(text, add_special_tokens=False).input_ids


def test_prefix_rendering_fallback_matches_generation_marks(tiny) -> None:
    _, tokenizer = tiny
    plain = AutoTokenizer.from_pretrained(resolve_model(TINY_RANDOM))
    plain.chat_template = SMOLLM2_TEMPLATE  # no {% generation %} markers
    for flags in ([False, True, False], [True, False, True]):
        conversation = _conversation(flags)
        assert tokenize_conversation(plain, conversation, 4096) == tokenize_conversation(tokenizer, conversation, 4096)
    plain.chat_template = "{{ messages | length }}" + SMOLLM2_TEMPLATE  # prefixes don't render as prefixes
    with pytest.raises(CourseCorrectError, match="generation"):
        tokenize_conversation(plain, _conversation([True]), 4096)


def test_truncation_and_dropping(tiny) -> None:
    _, tokenizer = tiny
    full = tokenize_conversation(tokenizer, _conversation([False, False, True]), 4096)
    first = tokenize_conversation(tokenizer, _conversation([True, False, False]), 4096)
    late_start = _runs(full["labels"])[0][0]
    first_end = _runs(first["labels"])[0][1]
    conversations = [
        _conversation([True, False, True]),  # cut before its last flagged span: kept, truncated
        _conversation([False, False, True]),  # its only span is cut away: dropped, truncated
        _conversation([False]),  # nothing flagged: dropped, not truncated
        _conversation([True]),  # short: untouched
    ]
    examples, stats = tokenize_conversations(tokenizer, conversations, max_length=late_start)
    assert first_end < late_start
    assert stats.as_dict() == {
        "examples": 2, "dropped": 2, "truncated": 2,
        "supervised_tokens": sum(sum(label != IGNORE_INDEX for label in e["labels"]) for e in examples),
        "total_tokens": sum(len(e["input_ids"]) for e in examples),
    }
    assert len(examples[0]["input_ids"]) == len(examples[0]["labels"]) == late_start
    assert examples[0]["labels"][:first_end] == first["labels"][:first_end]
    assert tokenize_conversation(tokenizer, _conversation([False, False, False]), 4096) is None
    cut = tokenize_conversation(tokenizer, _conversation([False, False, True]), max_length=late_start + 2)
    assert _runs(cut["labels"]) == [(late_start, late_start + 2)]  # a span cut in the middle keeps its start
    with pytest.raises(CourseCorrectError, match="max_length"):
        tokenize_conversations(tokenizer, conversations, max_length=1)


def _examples(tokenizer, weights: list[float]) -> list[dict]:
    flags = [[True, False, True], [False, True], [True]]
    conversations = [_conversation(flags[i % 3], weight=w) for i, w in enumerate(weights)]
    return [tokenize_conversation(tokenizer, c, 4096) for c in conversations]


def _loss_and_grad(model, batch) -> tuple[float, torch.Tensor]:
    model.zero_grad()
    total, count = weighted_nll(model, batch)
    loss = total / count
    loss.backward()
    grad = model.get_input_embeddings().weight.grad.clone()
    model.zero_grad()
    return loss.item(), grad


def test_collator_tensors(tiny) -> None:
    _, tokenizer = tiny
    examples = _examples(tokenizer, [1.0, 2.0])
    batch = SFTCollator(tokenizer.pad_token_id)(examples)
    short, long = sorted(len(e["input_ids"]) for e in examples)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["weights"].shape == (2, long)
    row = 0 if len(examples[0]["input_ids"]) == short else 1
    assert batch["attention_mask"][row].tolist() == [1] * short + [0] * (long - short)
    assert (batch["labels"][row, short:] == IGNORE_INDEX).all() and (batch["input_ids"][row, short:] == 2).all()
    assert batch["weights"][1, 0] == 2.0 and "position_ids" not in batch
    assert batch["num_tokens"] == short + long
    assert batch["num_supervised"] == sum(sum(t != IGNORE_INDEX for t in e["labels"]) for e in examples)


def test_weights_scale_the_loss(tiny) -> None:
    model, tokenizer = tiny
    collator = SFTCollator(tokenizer.pad_token_id)
    a, b = _examples(tokenizer, [1.0, 1.0])
    with torch.no_grad():
        total_a, count_a = weighted_nll(model, collator([a]))
        total_b, count_b = weighted_nll(model, collator([b]))
        total_2a, _ = weighted_nll(model, collator([{**a, "weight": 2.0}]))
        mixed, count = weighted_nll(model, collator([{**a, "weight": 2.0}, b]))
    # weight 0: no gradient from the example; it still counts in the batch's token total N
    loss, grad = _loss_and_grad(model, collator([{**a, "weight": 0.0}, b]))
    _, alone_grad = _loss_and_grad(model, collator([b]))
    assert loss == pytest.approx(float(total_b) / (count_a + count_b), rel=1e-5)
    torch.testing.assert_close(grad * (count_a + count_b) / count_b, alone_grad, rtol=1e-4, atol=1e-6)
    # weight 2: twice the contribution
    assert float(total_2a) == pytest.approx(2 * float(total_a), rel=1e-5)
    assert count == count_a + count_b
    assert float(mixed) == pytest.approx(2 * float(total_a) + float(total_b), rel=1e-5)


def test_packed_logits_equal_unpacked(tiny) -> None:
    """Position restarts without an attention mask give a block-diagonal mask (Llama, sdpa, CPU)."""
    model, tokenizer = tiny
    assert model.config._attn_implementation == "sdpa"
    examples = _examples(tokenizer, [1.0, 1.0, 1.0])
    (row,) = pack_examples(examples, max_length=4096)
    batch = SFTCollator(tokenizer.pad_token_id, packing=True)([row])
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        naive = model(input_ids=batch["input_ids"], use_cache=False).logits[0]  # one long sequence
        offset = 0
        for example in sorted(examples, key=lambda e: -len(e["input_ids"])):
            size = len(example["input_ids"])
            alone = model(input_ids=torch.tensor([example["input_ids"]]), use_cache=False).logits[0]
            torch.testing.assert_close(packed[offset : offset + size], alone, rtol=1e-4, atol=1e-4)
            if offset:  # the control: without the position restarts, later examples see earlier ones
                assert (naive[offset : offset + size] - alone).abs().max() > 1e-2
            offset += size


def test_packing_equals_padding(tiny) -> None:
    model, tokenizer = tiny
    examples = _examples(tokenizer, [1.0, 2.0, 0.5, 1.0, 3.0])
    longest = max(len(e["input_ids"]) for e in examples)
    rows = pack_examples(examples, max_length=2 * longest)
    assert 2 <= len(rows) < len(examples)
    assert sorted(len(r["input_ids"]) for r in rows) == sorted(len(r["position_ids"]) for r in rows)
    packed = SFTCollator(tokenizer.pad_token_id, packing=True)(rows)
    padded = SFTCollator(tokenizer.pad_token_id)(examples)
    assert packed["num_supervised"] == padded["num_supervised"] and packed["num_tokens"] == padded["num_tokens"]
    loss_packed, grad_packed = _loss_and_grad(model, packed)
    loss_padded, grad_padded = _loss_and_grad(model, padded)
    assert loss_packed == pytest.approx(loss_padded, rel=1e-5)
    torch.testing.assert_close(grad_packed, grad_padded, rtol=1e-3, atol=1e-6)
    with pytest.raises(ValueError, match="max_length"):
        pack_examples(examples, max_length=longest - 1)


def test_fast_head_path_equals_full_forward(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    model, tokenizer = tiny
    batch = SFTCollator(tokenizer.pad_token_id)(_examples(tokenizer, [1.0, 1.0]))
    keep = torch.nn.functional.pad(batch["labels"][:, 1:], (0, 1), value=IGNORE_INDEX) != IGNORE_INDEX
    with torch.no_grad():
        fast = supervised_logits(model, batch, keep)
        monkeypatch.setattr(collate, "_head_parts", lambda m: None)
        full = supervised_logits(model, batch, keep)
    assert fast.shape == (int(keep.sum()), model.config.vocab_size)
    torch.testing.assert_close(fast, full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("batch_size", "grad_accum"), [(1, 2), (1, 4), (4, 1)])
def test_gradient_accumulation_normalizes_over_the_step(tiny, tmp_path: Path, batch_size: int, grad_accum: int) -> None:
    """The loss of a step is over all its supervised tokens, however it is split into micro-batches."""
    _, tokenizer = tiny
    examples = _examples(tokenizer, [1.0, 2.0, 1.0, 0.5])[: batch_size * grad_accum]
    with torch.no_grad():
        expected = weighted_nll(tiny[0], SFTCollator(tokenizer.pad_token_id)(examples))
    model, _ = load_model_and_tokenizer(TINY_RANDOM, dtype="float32", device="cpu")
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=batch_size, gradient_accumulation_steps=grad_accum,
        max_steps=1, learning_rate=1e-9, report_to="none", disable_tqdm=True, remove_unused_columns=False,
        use_cpu=True, logging_steps=1, save_strategy="no",
    )
    trainer = _WeightedTrainer(model=model, args=args, train_dataset=examples,
                               data_collator=SFTCollator(tokenizer.pad_token_id))
    trainer.train()
    logged = next(h for h in trainer.state.log_history if "loss" in h)
    assert logged["loss"] == pytest.approx(float(expected[0] / expected[1]), rel=1e-4)


def _general(n: int) -> list[Conversation]:
    answer = Message(role="assistant", content="a", loss=True)
    return [Conversation(messages=[Message(role="user", content=f"q{i}"), answer]) for i in range(n)]


@pytest.mark.parametrize(("ratio", "added"), [(0.2, 40), (0.5, 10), (1.0, 0), (0.01, 100)])
def test_mix_ratio(ratio: float, added: int) -> None:
    agent, general = [_conversation([True])] * 10, _general(100)
    mixed = mix_conversations(agent, general, ratio, seed=3)
    assert mixed[:10] == agent and len(mixed) == 10 + added
    picked = [c.messages[0].content for c in mixed[10:]]
    assert len(set(picked)) == added  # without replacement
    assert mixed == mix_conversations(agent, general, ratio, seed=3)


def test_read_mix_data(tmp_path: Path) -> None:
    path = tmp_path / "general.jsonl"
    plain = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "id": 7}
    ours = _conversation([False, True]).model_dump(mode="json")
    path.write_text(json.dumps(plain) + "\n" + json.dumps(ours) + "\n")
    first, second = read_mix_data(path)
    assert [m.loss for m in first.messages] == [False, True]  # plain chat: every assistant turn is trained
    assert second == Conversation.model_validate(ours)  # our schema: flags as given
    path.write_text(json.dumps(plain) + "\n" + json.dumps({"messages": [{"role": "bot", "content": "x"}]}) + "\n")
    with pytest.raises(CourseCorrectError, match=r"record 2: messages\.0\.role"):
        read_mix_data(path)
    path.write_text("{not json\n" + json.dumps(plain) + "\n")
    with pytest.raises(CourseCorrectError, match=":1: not valid JSON"):
        read_mix_data(path)
    path.write_text("\n")
    with pytest.raises(CourseCorrectError, match="no records"):
        read_mix_data(path)
    with pytest.raises(CourseCorrectError, match="no such file"):
        read_mix_data(tmp_path / "missing.jsonl")


def test_config_checks() -> None:
    assert TrainConfig().peak_lr == 1e-4 and TrainConfig(lora=False).peak_lr == 2e-5
    assert TrainConfig(learning_rate=3e-4, lora=False).peak_lr == 3e-4
    with pytest.raises(ConfigError, match="lr_scheduler"):
        validate_config(TrainConfig, {"lr_scheduler": "cosine_with_min_lr"})
    with pytest.raises(ConfigError, match="epoch: unknown field"):
        validate_config(TrainConfig, {"epoch": 1})
    with pytest.raises(ConfigError, match="mix_ratio"):
        validate_config(TrainConfig, {"mix_ratio": 0})
    assert all(field.description for field in TrainConfig.model_fields.values())


def _data(n: int = 8) -> list[Conversation]:
    return [_conversation([True, False, True], weight=1.0 + i % 2) for i in range(n)] + [_conversation([True], 0.0)]


@pytest.mark.parametrize("lora", [True, False])
def test_train_sft_end_to_end(tmp_path: Path, tiny, lora: bool) -> None:
    config = TrainConfig(model=TINY_RANDOM, lora=lora, learning_rate=1e-3 if lora else 3e-4, max_steps=8,
                         batch_size=4, logging_steps=1, warmup_ratio=0, lr_scheduler="constant")
    summary = train_sft(config, _data(), tmp_path, progress=False)
    assert json.loads((tmp_path / SUMMARY_FILE).read_text()) == summary
    assert summary["steps"] == 8 and summary["examples"] == 8 and summary["conversations"] == 9
    assert summary["dropped"] == summary["truncated"] == 0 and summary["zero_weight"] == 1
    assert summary["train_loss_last"] < summary["train_loss_first"] - 1.0
    assert summary["tokens_per_s"] > summary["supervised_tokens_per_s"] > 0
    folder = Path(summary["model_path"])
    assert folder == tmp_path / "model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", SUMMARY_FILE]  # no temp folders or checkpoints
    assert (folder / "model.safetensors").is_file() and not (folder / "adapter_config.json").exists()

    # The saved (merged) model has learned the data; the base model has not.
    trained, tokenizer = load_model_and_tokenizer(str(folder), dtype="float32", device="cpu")
    batch = SFTCollator(tokenizer.pad_token_id)(tokenize_conversations(tokenizer, _data(), 4096)[0])
    with torch.no_grad():
        after = weighted_nll(trained, batch)
        before = weighted_nll(tiny[0], batch)
    assert float(after[0] / after[1]) < float(before[0] / before[1]) - 1.0
    assert tokenizer.chat_template == tiny[1].chat_template and trained.config.use_cache

    llm = TransformersLLM(str(folder), max_batch_size=2)
    outs = llm.generate([_conversation([True]).chat()[:1]] * 2, SamplingParams(max_new_tokens=8))
    assert len(outs) == 2 and all(o[0].completion_tokens > 0 for o in outs)


def test_train_sft_packing_and_mix(tmp_path: Path) -> None:
    mix = tmp_path / "general.jsonl"
    write_conversations(mix, _general(50))
    config = TrainConfig(model=TINY_RANDOM, packing=True, max_length=512, max_steps=2, batch_size=2,
                         mix_data=mix, mix_ratio=0.5)
    summary = train_sft(config, _data(4), tmp_path / "run", progress=False)
    assert summary["general_examples"] == 4 and summary["examples"] == 8
    assert 1 <= summary["packed_rows"] < 8 and summary["steps"] == 2
    with pytest.raises(CourseCorrectError, match="no training examples"):
        train_sft(config.model_copy(update={"mix_data": None}), [_conversation([False])], tmp_path / "x")


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("train")(train_command)

    @app.callback()
    def _root() -> None:
        """Test app."""

    return app


def test_train_command(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    write_conversations(data, _data(4))
    config = tmp_path / "train.toml"
    config.write_text('model = "tiny-random"\nbatch_size = 2\nmax_steps = 50\nlora_r = 4\n')
    out = tmp_path / "run"
    args = ["train", "--data", str(data), "--config", str(config), "--max-steps", "1", "--out", str(out)]
    result = CliRunner().invoke(_cli(), [*args, "--full", "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["steps"] == 1 and summary["mode"] == "full" and summary["learning_rate"] == 2e-5
    assert "model:" in result.output and str(out / "model") in result.output.replace("\n", "")
    assert "--mix-ratio" in CliRunner().invoke(_cli(), ["train", "--help"]).output
    missing = CliRunner().invoke(_cli(), ["train", "--data", str(tmp_path / "nope.jsonl")])
    assert isinstance(missing.exception, CourseCorrectError) and "no such file" in str(missing.exception)
    config.write_text("lora_rank = 4\n")
    bad = CliRunner().invoke(_cli(), ["train", "--data", str(data), "--config", str(config)])
    assert isinstance(bad.exception, ConfigError) and "lora_rank: unknown field" in str(bad.exception)


@pytest.mark.parametrize(("weight", "problem"), [("Infinity", "finite number"), ("NaN", "finite number"),
                                                 ("-1", "greater than or equal to 0")])
def test_training_data_weights_must_be_finite_and_not_negative(tmp_path: Path, weight: str, problem: str) -> None:
    path = tmp_path / "data.jsonl"
    good = json.dumps(_conversation([True]).model_dump(mode="json"))
    path.write_text(good + "\n\n" + good.replace('"weight": 1.0', f'"weight": {weight}') + "\n")
    with pytest.raises(CourseCorrectError, match=rf"data\.jsonl:3: weight: .*{problem}"):
        list(read_conversations(path))
    result = CliRunner().invoke(_cli(), ["train", "--data", str(path), "--out", str(tmp_path / "run")])
    assert isinstance(result.exception, CourseCorrectError) and "data.jsonl:3: weight" in str(result.exception)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("lora", "learning_rate", "weight"), [(True, 1e30, 1.0), (False, 1e-4, 1e38)])
def test_a_diverging_sft_run_stops_and_saves_no_model(tmp_path: Path, lora: bool, learning_rate: float,
                                                      weight: float) -> None:
    """A huge learning rate, or a finite weight that overflows the float32 loss: a clear error, no model."""
    config = TrainConfig(model=TINY_RANDOM, lora=lora, learning_rate=learning_rate, max_steps=4, batch_size=2,
                         warmup_ratio=0, lr_scheduler="constant")
    with pytest.raises(TrainingError, match=r"stopped at step [1-4]: the loss is (nan|inf); lower the learning rate"):
        train_sft(config, [_conversation([True], weight), *_data(3)], tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_diverging_dpo_run_stops_and_saves_no_model(tmp_path: Path) -> None:
    prompt = [Message(role="user", content="Craft a stick.")]
    pairs = [PreferencePair(prompt=prompt, chosen=[Message(role="assistant", content=f"Action: craft {i} stick")],
                            rejected=[Message(role="assistant", content=f"Action: jump {i}")]) for i in range(2)]
    config = DPOStageConfig(learning_rate=1e30, batch_size=2, grad_accum=1, max_steps=4, warmup_ratio=0,
                            lr_scheduler="constant", max_length=128)
    with pytest.raises(TrainingError, match=r"stopped at step [1-4]: the loss is (nan|inf)"):
        train_dpo(config, pairs, tmp_path, TINY_RANDOM, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_non_finite_weights_are_never_saved(tmp_path: Path, tiny) -> None:
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.bias[0] = float("nan")
    with pytest.raises(TrainingError, match=r"1 of 2 weight tensors non-finite \(e\.g\. bias\)"):
        _save_merged(model, tiny[1], tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def test_a_model_save_killed_midway_leaves_a_temporary_that_a_restart_removes(
    tmp_path: Path, tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Killed(Exception):
        pass

    def killed_while_writing(path: Path, **kwargs) -> None:
        (Path(path) / "model.safetensors").write_bytes(b"half a model")
        raise Killed

    model = torch.nn.Linear(2, 2)
    model.save_pretrained = killed_while_writing
    monkeypatch.setattr(sft.shutil, "rmtree", lambda *args, **kwargs: None)  # SIGKILL skips the cleanup
    with pytest.raises(Killed):
        _save_merged(model, tiny[1], tmp_path / "model")
    monkeypatch.undo()
    (left,) = tmp_path.iterdir()
    assert remove_temporaries(tmp_path) == [left] and list(tmp_path.iterdir()) == []


def test_a_model_save_removes_what_a_killed_save_of_it_left(tmp_path: Path, tiny) -> None:
    left = temp_dir_beside(tmp_path / "model")
    (left / "model.safetensors").write_bytes(b"half a model")
    _save_merged(tiny[0], tiny[1], tmp_path / "model")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
