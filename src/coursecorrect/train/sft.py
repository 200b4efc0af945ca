"""Supervised fine-tuning on conversations: masked to ``loss=True`` assistant turns, weighted per example.

:func:`train_sft` tokenizes (:mod:`.tokenize`), optionally mixes in general chat data (Agent-R Eq. 6),
batches padded or packed (:mod:`.collate`), trains with a thin :class:`transformers.Trainer` subclass
(LoRA through PEFT, or full fine-tuning), and writes a plain merged model folder that
:func:`~coursecorrect.llm.models.load_model_and_tokenizer` and the backends load like any other.
"""

from __future__ import annotations

import os
import random
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from pydantic import Field, ValidationError
from transformers import PrinterCallback, Trainer, TrainingArguments, set_seed

from coursecorrect.config import MAX_COUNT, MAX_EPOCHS, MAX_SIZE, MAX_TOKENS, Config, Seed
from coursecorrect.data.conversation import Conversation
from coursecorrect.errors import CourseCorrectError
from coursecorrect.io import atomic_write_json, read_jsonl, remove_temporaries_of, temp_dir_beside
from coursecorrect.llm.models import DEFAULT_MODEL, default_device, load_model_and_tokenizer, resolve_dtype
from coursecorrect.train.collate import SFTCollator, pack_examples, weighted_nll
from coursecorrect.train.finite import FiniteLoss, check_finite_weights
from coursecorrect.train.tokenize import tokenize_conversations

SUMMARY_FILE = "train_summary.json"
MODEL_DIR = "model"
LORA_LR, FULL_LR = 1e-4, 2e-5


class TrainConfig(Config):
    """One SFT run: the model, LoRA or full fine-tuning, the schedule, batching and the data mix."""

    model: str = Field(DEFAULT_MODEL, description="model to start from: alias, local folder or hub id")
    lora: bool = Field(True, description="train LoRA adapters (merged into the saved model); false: all weights")
    lora_r: int = Field(16, ge=1, le=MAX_SIZE, description="LoRA rank")
    lora_alpha: int = Field(
        32, ge=1, le=MAX_SIZE, description="LoRA scaling numerator (the update is scaled by alpha / r)"
    )
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the LoRA branch")
    lora_target_modules: list[str] | str = Field(
        "all-linear", description="modules that get adapters: 'all-linear' or a list of module names"
    )
    epochs: float = Field(
        3.0, gt=0, le=MAX_EPOCHS, description="passes over the data (Agent-R: 3 in iteration 1, then 1)"
    )
    learning_rate: float | None = Field(
        None, gt=0, description=f"peak learning rate; default {LORA_LR:g} with LoRA, {FULL_LR:g} for full fine-tuning"
    )
    lr_scheduler: Literal[
        "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt"
    ] = Field("cosine", description="learning-rate schedule after warmup")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="share of the steps spent warming up linearly")
    batch_size: int = Field(
        4, ge=1, le=MAX_SIZE, description="rows per micro-batch: examples, or packed rows with packing"
    )
    grad_accum: int = Field(1, ge=1, le=MAX_SIZE, description="micro-batches per optimizer step")
    max_length: int = Field(
        2048, ge=2, le=MAX_TOKENS, description="tokens per example (longer ones are cut on the right)"
    )
    packing: bool = Field(False, description="pack examples into rows of max_length tokens (block-diagonal mask)")
    group_by_length: bool = Field(True, description="batch examples of similar length together (padded batches)")
    mix_data: Path | None = Field(
        None, description="general chat JSONL to mix in: our conversation schema, or plain {'messages': [...]}"
    )
    mix_ratio: float = Field(
        0.2, gt=0, le=1, description="η: share of the agent data in the mix (general examples added to match it)"
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="weights' dtype; auto: float32 on CPU, bfloat16 LoRA or bf16 autocast on GPU"
    )
    seed: Seed = Field(0, description="seed of LoRA initialisation, data order and the mix sample")
    max_steps: int | None = Field(
        None, ge=1, le=MAX_COUNT, description="stop after this many optimizer steps (overrides epochs)"
    )
    logging_steps: int = Field(10, ge=1, le=MAX_COUNT, description="optimizer steps between logged losses")

    @property
    def peak_lr(self) -> float:
        """The learning rate to use: the configured one, or the default of the chosen mode."""
        if self.learning_rate is not None:
            return self.learning_rate
        return LORA_LR if self.lora else FULL_LR


def _as_conversation(record: Any) -> Any:
    """A plain chat record (no message carries ``loss``) → our schema with every assistant turn trained."""
    messages = record.get("messages") if isinstance(record, dict) else None
    if isinstance(messages, list) and all(isinstance(m, dict) and "loss" not in m for m in messages):
        return {"messages": [{**m, "loss": m.get("role") == "assistant"} for m in messages]}
    return record


def read_mix_data(path: Path) -> list[Conversation]:
    """General chat data: records in our conversation schema (trained as flagged), or plain
    ``{"messages": [{"role", "content"}, ...]}`` records (other keys ignored) whose assistant turns are all
    trained. A malformed record raises an error naming ``file: record N: field``."""
    path = Path(path)
    if not path.is_file():
        raise CourseCorrectError(f"mix data {path}: no such file")
    conversations = []
    for number, record in enumerate(read_jsonl(path), start=1):
        try:
            conversations.append(Conversation.model_validate(_as_conversation(record)))
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"]) or "(record)"
            raise CourseCorrectError(f"mix data {path}: record {number}: {where}: {problem['msg']}") from None
    if not conversations:
        raise CourseCorrectError(f"mix data {path}: no records")
    return conversations


def mix_conversations(
    agent: list[Conversation], general: list[Conversation], ratio: float, seed: int = 0
) -> list[Conversation]:
    """``agent`` plus general examples sampled without replacement so that agent / (agent + general) ≈
    ``ratio`` — as many as ``general`` has at most."""
    wanted = round(len(agent) * (1 - ratio) / ratio)
    return [*agent, *random.Random(seed).sample(general, min(wanted, len(general)))]


class _WeightedTrainer(FiniteLoss, Trainer):
    """A Trainer whose loss is :func:`~coursecorrect.train.collate.weighted_nll` over the optimizer step's
    supervised tokens; it also counts the tokens it trained on and keeps each micro-batch's mean loss, and
    stops on a non-finite loss (:class:`~coursecorrect.train.finite.FiniteLoss`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Makes the Trainer count supervised tokens over all micro-batches of a step and pass the count in.
        self.model_accepts_loss_kwargs = True
        self.batch_losses: list[torch.Tensor] = []
        self.tokens_seen = self.supervised_seen = 0

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, None]:
        total, count = weighted_nll(model, inputs)
        self.batch_losses.append(total.detach() / count)
        self.tokens_seen += inputs["num_tokens"]
        self.supervised_seen += inputs["num_supervised"]
        loss = total / (num_items_in_batch if num_items_in_batch is not None else count)
        return (loss, None) if return_outputs else loss


def _precision(dtype: str, lora: bool, device: str) -> tuple[torch.dtype, bool]:
    """(weights' dtype, bf16 autocast). ``auto``: float32 on CPU; on GPU a bfloat16 frozen base under LoRA
    (PEFT keeps adapters in float32), float32 master weights with bfloat16 autocast for full fine-tuning."""
    if dtype != "auto" or device == "cpu":
        return resolve_dtype(dtype, device), False
    return (torch.bfloat16, False) if lora else (torch.float32, True)


def _save_merged(model: torch.nn.Module, tokenizer: Any, final: Path) -> None:
    """Merge LoRA adapters and save a plain model folder (safetensors + tokenizer) at ``final``, atomically:
    written beside it, then renamed into place, so a crash never leaves half a model there, and what an
    earlier, killed save of it left there is deleted first. Non-finite weights raise
    :class:`~coursecorrect.train.finite.TrainingError` instead."""
    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
    check_finite_weights(model)
    remove_temporaries_of(final)
    tmp = temp_dir_beside(final)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private
        if final.exists():
            stale = temp_dir_beside(final, "stale.")
            os.replace(final, stale / final.name)
            shutil.rmtree(stale)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _step_mean(losses: list[torch.Tensor]) -> float | None:
    return round(float(torch.stack(losses).mean()), 6) if losses else None


def common_training_args(config: Any, out_dir: Path, progress: bool, device: str, autocast: bool) -> dict[str, Any]:
    """The ``TrainingArguments`` that SFT and DPO set alike, from a config with the same schedule fields."""
    return {
        "output_dir": str(out_dir),  # nothing is written there: checkpoints are off
        "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps or -1,
        "learning_rate": config.peak_lr,
        "lr_scheduler_type": config.lr_scheduler,
        "warmup_steps": config.warmup_ratio,  # a float below 1 is a share of the steps
        "logging_steps": config.logging_steps,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": not progress,
        "seed": config.seed,
        "bf16": autocast,  # DPOConfig defaults to bf16 autocast, which is emulated (slow) on most CPUs
        "use_cpu": device == "cpu",
    }


def _training_args(
    config: TrainConfig, out_dir: Path, progress: bool, device: str, autocast: bool
) -> TrainingArguments:
    return TrainingArguments(
        **common_training_args(config, out_dir, progress, device, autocast),
        remove_unused_columns=False,
        label_names=["labels"],
        train_sampling_strategy="group_by_length" if config.group_by_length and not config.packing else "random",
    )


def _with_lora(model: torch.nn.Module, config: TrainConfig) -> torch.nn.Module:
    lora = LoraConfig(
        task_type="CAUSAL_LM", r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
    )
    return get_peft_model(model, lora)


def train_sft(
    config: TrainConfig,
    conversations: list[Conversation],
    out_dir: Path,
    progress: bool = True,
    base_model: str | None = None,
) -> dict[str, Any]:
    """Fine-tune ``base_model`` (default ``config.model``) on ``conversations``; save the merged model to
    ``out_dir/model/`` and the run's figures to ``out_dir/train_summary.json``, and return those figures.

    Conversations of weight 0 are skipped (they would contribute no gradient), as are those with no supervised
    token left after truncation to ``max_length`` (counted as dropped).
    """
    with warnings.catch_warnings():
        # transformers' own internals (PEFT and Trainer paths) call a method that transformers has deprecated
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return _train(config, conversations, Path(out_dir), progress, base_model)


def _train(
    config: TrainConfig, conversations: list[Conversation], out_dir: Path, progress: bool, base_model: str | None
) -> dict[str, Any]:
    start = time.perf_counter()
    agent = [c for c in conversations if c.weight > 0]
    data = agent
    if config.mix_data is not None:
        data = mix_conversations(agent, read_mix_data(config.mix_data), config.mix_ratio, config.seed)

    set_seed(config.seed)  # LoRA initialisation happens before the Trainer seeds anything
    device = default_device()
    dtype, autocast = _precision(config.dtype, config.lora, device)
    source = base_model or config.model
    model, tokenizer = load_model_and_tokenizer(source, dtype=dtype, device=device)
    examples, stats = tokenize_conversations(tokenizer, data, config.max_length)
    if not examples:
        raise CourseCorrectError(
            f"no training examples: none of the {len(data)} conversations has a supervised token (an assistant "
            "message with loss=true and weight > 0) within max_length"
        )
    out_dir.mkdir(parents=True, exist_ok=True)  # only now: bad mix data, a bad model or no examples write nothing
    use_cache = model.config.use_cache  # the Trainer turns it off; the saved model should generate normally
    rows = pack_examples(examples, config.max_length) if config.packing else examples
    trainer = _WeightedTrainer(
        model=_with_lora(model, config) if config.lora else model,
        args=_training_args(config, out_dir, progress, device, autocast),
        train_dataset=rows,
        processing_class=tokenizer,
        data_collator=SFTCollator(tokenizer.pad_token_id, packing=config.packing),
    )
    if not progress:
        trainer.remove_callback(PrinterCallback)
    train_start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - train_start

    trainer.model.config.use_cache = use_cache
    _save_merged(trainer.model, tokenizer, out_dir / MODEL_DIR)
    summary = {
        "model": source,
        "mode": "lora" if config.lora else "full",
        "conversations": len(conversations),
        "zero_weight": len(conversations) - len(agent),
        "general_examples": len(data) - len(agent),
        **stats.as_dict(),
        "packed_rows": len(rows) if config.packing else None,
        "steps": trainer.state.global_step,
        "epochs": round(trainer.state.epoch or 0.0, 4),
        "learning_rate": config.peak_lr,
        "train_loss_first": _step_mean(trainer.batch_losses[: config.grad_accum]),
        "train_loss_last": _step_mean(trainer.batch_losses[-config.grad_accum :]),
        "train_seconds": round(train_seconds, 3),
        "wall_seconds": round(time.perf_counter() - start, 3),
        "tokens_trained": trainer.tokens_seen,
        "supervised_tokens_trained": trainer.supervised_seen,
        "tokens_per_s": round(trainer.tokens_seen / train_seconds, 2),
        "supervised_tokens_per_s": round(trainer.supervised_seen / train_seconds, 2),
        "model_path": str(out_dir / MODEL_DIR),
    }
    atomic_write_json(out_dir / SUMMARY_FILE, summary)
    return summary
