"""ETO's second stage: DPO of the SFT model on (good, bad) trajectory pairs, with TRL's ``DPOTrainer``.

:func:`train_dpo` loads the SFT model (a plain model folder, as :func:`~coursecorrect.train.sft.train_sft`
writes it), hands TRL the pairs in its conversational format (``prompt`` / ``chosen`` / ``rejected`` as lists
of messages; TRL applies the tokenizer's chat template) and trains with TRL's loss (``sigmoid``: standard
DPO). The reference model is the SFT model itself: with LoRA, TRL wraps the policy in a fresh adapter and
scores the reference with the adapter disabled, which is exactly the SFT weights; for full fine-tuning a
frozen second copy of the SFT folder is passed as ``ref_model``. Either way policy and reference agree at
step 0, so the first logged loss is ln 2. LoRA is merged at the end and a plain model folder is written to
``out_dir/model`` (tokenizer included), with the run's figures in ``out_dir/dpo_summary.json``.

Multi-turn continuations. TRL 1.16 tokenizes ``prompt`` with the generation prompt and ``prompt + chosen``
(``prompt + rejected``) without, and its completion mask covers *every* token after the prompt: the agent's
turns, but also the environment's observations (user turns), their role headers and the newlines between
turns. Those tokens would then count in the sequence log-probabilities whose policy/reference ratio DPO
compares. ETO (Song et al., 2024) scores only the agent's tokens (its trainer masks the human turns), and so
does this stage by default (``mask_observations``): a collator derived from TRL's narrows each completion mask
to the tokens that SFT trains — each assistant message's content and its end-of-turn token — found with the
same tokenization as SFT (:func:`~coursecorrect.train.tokenize.tokenize_conversation`) and checked to be the
very token ids TRL produced. With ``mask_observations = false`` TRL's own mask (all continuation tokens) is
used unchanged.

No pairs (no tree held a good and a bad leaf): nothing is trained and nothing is copied; the summary says
``skipped`` and its ``model_path`` points at the SFT model, which is then this stage's output.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from datasets import Dataset
from datasets.utils import logging as datasets_logging
from peft import LoraConfig
from pydantic import Field
from transformers import PrinterCallback, set_seed
from trl import DPOConfig, DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference

from coursecorrect.config import MAX_COUNT, MAX_EPOCHS, MAX_SIZE, MAX_TOKENS, Config, Seed
from coursecorrect.data.conversation import Conversation, Message
from coursecorrect.data.preferences import PreferencePair
from coursecorrect.errors import CourseCorrectError
from coursecorrect.io import atomic_write_json
from coursecorrect.llm.models import default_device, load_model_and_tokenizer, resolve_model
from coursecorrect.train.finite import FiniteLoss
from coursecorrect.train.sft import MODEL_DIR, _precision, _save_merged, common_training_args
from coursecorrect.train.tokenize import IGNORE_INDEX, tokenize_conversation

SUMMARY_FILE = "dpo_summary.json"
LORA_LR, FULL_LR = 1e-5, 1e-6


class DPOStageConfig(Config):
    """ETO's DPO stage: β, the schedule, batching, LoRA or full fine-tuning, and which tokens are scored."""

    beta: float = Field(0.1, gt=0, description="DPO β: how strongly the policy is held to the reference (SFT) model")
    learning_rate: float | None = Field(
        None, gt=0, description=f"peak learning rate; default {LORA_LR:g} with LoRA, {FULL_LR:g} for full fine-tuning"
    )
    lr_scheduler: Literal[
        "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt"
    ] = Field("cosine", description="learning-rate schedule after warmup")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="share of the steps spent warming up linearly")
    epochs: float = Field(1.0, gt=0, le=MAX_EPOCHS, description="passes over the pairs")
    batch_size: int = Field(
        1, ge=1, le=MAX_SIZE,
        description="pairs per micro-batch (each pair is two sequences; SmolLM2-135M at 1,024 tokens: 6.7 GB peak "
        "at 1, over 15 GB at 4)",
    )
    grad_accum: int = Field(4, ge=1, le=MAX_SIZE, description="micro-batches per optimizer step")
    max_length: int = Field(
        2048, ge=2, le=MAX_TOKENS,
        description="tokens per sequence, cut on the right; a pair whose prompt alone fills it is dropped",
    )
    lora: bool = Field(True, description="train LoRA adapters (merged into the saved model); false: all weights")
    lora_r: int = Field(16, ge=1, le=MAX_SIZE, description="LoRA rank")
    lora_alpha: int = Field(
        32, ge=1, le=MAX_SIZE, description="LoRA scaling numerator (the update is scaled by alpha / r)"
    )
    mask_observations: bool = Field(
        True, description="score only the agent's turns of the continuations (ETO); false: every token (TRL's default)"
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="weights' dtype; auto: float32 on CPU, bfloat16 LoRA or bf16 autocast on GPU"
    )
    activation_checkpointing: bool = Field(False, description="recompute activations in the backward (less memory)")
    seed: Seed = Field(0, description="seed of LoRA initialisation and data order")
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


def agent_token_mask(
    tokenizer: Any, prompt: list[dict[str, str]], continuation: list[dict[str, str]]
) -> dict[str, list[int]]:
    """Token ids of ``prompt + continuation`` and a 0/1 mask of the continuation's agent tokens: each assistant
    message's content and end-of-turn token, as SFT supervises them (prompt, observations, role headers: 0)."""
    messages = [Message(role=m["role"], content=m["content"]) for m in prompt]
    messages += [Message(role=m["role"], content=m["content"], loss=m["role"] == "assistant") for m in continuation]
    example = tokenize_conversation(tokenizer, Conversation(messages=messages), max_length=sys.maxsize)
    if example is None:  # a continuation always has an assistant message; guard against a template that hides it
        raise CourseCorrectError("a preference continuation has no agent token under this chat template")
    return {"ids": example["input_ids"], "mask": [int(label != IGNORE_INDEX) for label in example["labels"]]}


def _with_agent_masks(record: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    out = {}
    for side in ("chosen", "rejected"):
        tokens = agent_token_mask(tokenizer, record["prompt"], record[side])
        out[f"{side}_agent_ids"], out[f"{side}_agent_mask"] = tokens["ids"], tokens["mask"]
    return out


@dataclass
class AgentTurnsCollator(DataCollatorForPreference):
    """TRL's preference collator with each completion mask narrowed to the agent's tokens: the
    ``{side}_agent_mask`` columns, over the same ids as TRL's ``prompt_ids + {side}_ids`` (checked)."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().torch_call(examples)
        width = batch["completion_mask"].shape[1]
        keep = slice(None)  # the collator's own truncation of the ids, applied to the masks
        if self.max_length is not None:
            start = self.truncation_mode == "keep_start"
            keep = slice(None, self.max_length) if start else slice(-self.max_length, None)
        rows = []
        for side in ("chosen", "rejected"):  # TRL's batch: every chosen sequence, then every rejected one
            for example in examples:
                if example["prompt_ids"] + example[f"{side}_ids"] != example[f"{side}_agent_ids"]:
                    raise CourseCorrectError(
                        f"the {side} tokens TRL produced differ from the chat template's rendering of the whole "
                        "conversation; cannot tell agent turns from observations (set mask_observations = false)"
                    )
                mask = example[f"{side}_agent_mask"][keep]
                rows.append(mask + [0] * (width - len(mask)))
        mask = torch.tensor(rows, dtype=batch["completion_mask"].dtype)
        batch["completion_mask"] = batch["completion_mask"] * mask
        return batch


class _DPOTrainer(FiniteLoss, DPOTrainer):
    """TRL's DPO trainer, stopped by a non-finite loss (:class:`~coursecorrect.train.finite.FiniteLoss`)."""


@contextlib.contextmanager
def _quiet_datasets(progress: bool) -> Iterator[None]:
    """Hide the ``datasets`` progress bars of TRL's preprocessing when ``progress`` is off."""
    enabled = datasets_logging.is_progress_bar_enabled()
    if enabled and not progress:
        datasets_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled and not progress:
            datasets_logging.enable_progress_bar()


def _logged(trainer: Any, key: str, which: int) -> float | None:
    values = [entry[key] for entry in trainer.state.log_history if key in entry]
    return round(float(values[which]), 6) if values else None


def train_dpo(
    config: DPOStageConfig,
    pairs: list[PreferencePair],
    out_dir: Path,
    sft_model: str,
    progress: bool = True,
) -> dict[str, Any]:
    """DPO-train ``sft_model`` (alias, folder or hub id) on ``pairs`` against itself as the reference; save the
    merged model to ``out_dir/model/`` and the run's figures to ``out_dir/dpo_summary.json``, and return them.

    With no pairs nothing is trained: the summary (``skipped: true``) points ``model_path`` at the SFT model.
    """
    with warnings.catch_warnings():
        # transformers' own internals (PEFT and Trainer paths) call a method that transformers has deprecated
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        with _quiet_datasets(progress):
            return _train(config, pairs, Path(out_dir), sft_model, progress)


def _skip(config: DPOStageConfig, out_dir: Path, sft_model: str) -> dict[str, Any]:
    source = resolve_model(sft_model)
    summary = {
        "skipped": True, "reason": "no preference pairs", "model": sft_model, "pairs": 0, "pairs_trained": 0,
        "steps": 0, "beta": config.beta, "train_loss_first": None, "train_loss_last": None, "train_seconds": 0.0,
        "model_path": str(source),
    }
    atomic_write_json(out_dir / SUMMARY_FILE, summary)
    return summary


def _train(
    config: DPOStageConfig, pairs: list[PreferencePair], out_dir: Path, sft_model: str, progress: bool
) -> dict[str, Any]:
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    if not pairs:
        return _skip(config, out_dir, sft_model)

    set_seed(config.seed)
    device = default_device()
    dtype, autocast = _precision(config.dtype, config.lora, device)
    model, tokenizer = load_model_and_tokenizer(sft_model, dtype=dtype, device=device)
    use_cache = model.config.use_cache  # the Trainer turns it off; the saved model should generate normally
    ref_model, peft_config = None, None
    if config.lora:
        # a fresh adapter on the SFT weights: TRL scores the reference with the adapter disabled = the SFT model
        peft_config = LoraConfig(
            task_type="CAUSAL_LM", r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0,
            target_modules="all-linear",
        )
    else:
        ref_model, _ = load_model_and_tokenizer(sft_model, dtype=dtype, device=device)  # frozen copy of the SFT model

    records = [p.trl_record() for p in pairs]
    if config.mask_observations:
        records = [{**r, **_with_agent_masks(r, tokenizer)} for r in records]
    args = DPOConfig(
        **common_training_args(config, out_dir, progress, device, autocast),
        beta=config.beta,
        loss_type=["sigmoid"],
        max_length=config.max_length,
        truncation_mode="keep_start",
        activation_checkpointing=config.activation_checkpointing,  # DPOConfig turns it on by default
        remove_unused_columns=not config.mask_observations,  # the agent-mask columns must reach the collator
    )
    collator = None
    if config.mask_observations:
        collator = AgentTurnsCollator(
            pad_token_id=tokenizer.pad_token_id, max_length=config.max_length, truncation_mode="keep_start",
            pad_to_multiple_of=args.pad_to_multiple_of,
        )
    trainer = _DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=args,
        data_collator=collator,
        train_dataset=Dataset.from_list(records),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    if not progress:
        trainer.remove_callback(PrinterCallback)
    trained_pairs = len(trainer.train_dataset)
    if not trained_pairs:
        raise CourseCorrectError(
            f"all {len(pairs)} preference pairs have prompts of max_length ({config.max_length}) tokens or more; "
            "raise max_length"
        )
    train_start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - train_start

    trainer.model.config.use_cache = use_cache
    _save_merged(trainer.model, tokenizer, out_dir / MODEL_DIR)
    summary = {
        "skipped": False,
        "model": sft_model,
        "reference": "sft model, LoRA adapter disabled" if config.lora else "sft model, frozen copy",
        "mode": "lora" if config.lora else "full",
        "mask_observations": config.mask_observations,
        "pairs": len(pairs),
        "pairs_trained": trained_pairs,
        "steps": trainer.state.global_step,
        "epochs": round(trainer.state.epoch or 0.0, 4),
        "beta": config.beta,
        "learning_rate": config.peak_lr,
        "train_loss_first": _logged(trainer, "loss", 0),
        "train_loss_last": _logged(trainer, "loss", -1),
        "reward_accuracy_last": _logged(trainer, "rewards/accuracies", -1),
        "reward_margin_last": _logged(trainer, "rewards/margins", -1),
        "train_seconds": round(train_seconds, 3),
        "wall_seconds": round(time.perf_counter() - start, 3),
        "model_path": str(out_dir / MODEL_DIR),
    }
    atomic_write_json(out_dir / SUMMARY_FILE, summary)
    return summary
