"""Batches of tokenized examples, padded or packed, and the per-example-weighted token loss.

Two layouts:

- **padded**: one example a row, right-padded to the batch's longest; ``attention_mask`` marks real tokens.
  Pair it with length-grouped sampling so rows in a batch have similar lengths.
- **packed**: :func:`pack_examples` first bins examples into rows of at most ``max_length`` tokens
  (best-fit decreasing); a row's ``position_ids`` restart at 0 at every example and there is no
  ``attention_mask``, so transformers' masking utils build a block-diagonal causal mask from the position
  restarts — no token attends across examples. Row padding is a pseudo-example of its own, never supervised.

Loss (:func:`weighted_nll`): ``Σ_t w_t · NLL_t / N`` over supervised target tokens ``t``, where ``w_t`` is the
weight of the example the token belongs to and ``N`` the number of supervised tokens in the batch (with
gradient accumulation, in all micro-batches of the optimizer step). A weight-2 example so counts twice as
much as a weight-1 one, a weight-0 example not at all, and padding or packing never changes the value.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from peft import PeftModel
from transformers import PreTrainedModel

from coursecorrect.train.tokenize import IGNORE_INDEX

# Config fields of models whose logits are not just lm_head(hidden): those take the plain forward path.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def pack_examples(examples: list[dict[str, Any]], max_length: int) -> list[dict[str, Any]]:
    """Concatenate examples into rows of at most ``max_length`` tokens (best-fit decreasing, deterministic).

    Each row carries ``input_ids``, ``labels``, per-token ``weights`` and ``position_ids`` restarting at 0
    for every example. Examples must already fit in ``max_length``.
    """
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, bin index), sorted: the first fitting entry is the best fit
    for i in order:
        size = len(examples[i]["input_ids"])
        if size > max_length:
            raise ValueError(f"example {i} has {size} tokens, more than max_length {max_length}")
        at = bisect.bisect_left(free, (size, -1))
        if at < len(free):
            room, b = free.pop(at)
            bins[b].append(i)
        else:
            room, b = max_length, len(bins)
            bins.append([i])
        bisect.insort(free, (room - size, b))
    rows = []
    for members in bins:
        parts = [examples[i] for i in members]
        rows.append({
            "input_ids": [t for e in parts for t in e["input_ids"]],
            # an example's first label is never a target; unmasked it would be the previous example's next token
            "labels": [t for e in parts for t in [IGNORE_INDEX, *e["labels"][1:]]],
            "weights": [e["weight"] for e in parts for _ in e["input_ids"]],
            "position_ids": [p for e in parts for p in range(len(e["input_ids"]))],
        })
    return rows


@dataclass
class SFTCollator:
    """Collate examples (``packing=False``) or packed rows from :func:`pack_examples` (``packing=True``) into
    tensors: ``input_ids``, ``labels`` (-100 = not trained), per-token ``weights``, then ``attention_mask``
    (padded) or ``position_ids`` (packed); plus the plain ints ``num_tokens`` and ``num_supervised``."""

    pad_token_id: int
    packing: bool = False

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(f["input_ids"]) for f in features)
        ids, labels, weights, extra = [], [], [], []
        for f in features:
            size = len(f["input_ids"])
            pad = width - size
            ids.append(f["input_ids"] + [self.pad_token_id] * pad)
            labels.append(f["labels"] + [IGNORE_INDEX] * pad)
            weights.append((f["weights"] if self.packing else [f["weight"]] * size) + [0.0] * pad)
            # packed: padding restarts positions, so it is a separate pseudo-example; padded: a 0/1 mask.
            extra.append(f["position_ids"] + list(range(pad)) if self.packing else [1] * size + [0] * pad)
        labels_tensor = torch.tensor(labels)
        return {
            "input_ids": torch.tensor(ids),
            "labels": labels_tensor,
            "weights": torch.tensor(weights, dtype=torch.float32),
            ("position_ids" if self.packing else "attention_mask"): torch.tensor(extra),
            "num_tokens": sum(len(f["input_ids"]) for f in features),
            "num_supervised": int((labels_tensor[:, 1:] != IGNORE_INDEX).sum()),
        }


def _head_parts(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module] | None:
    """(decoder, LM head) when logits are exactly ``head(decoder(...))``; else None (wrapped models such as
    DDP, or models that scale or cap their logits)."""
    core = model.get_base_model() if isinstance(model, PeftModel) else model
    if not isinstance(core, PreTrainedModel) or any(getattr(core.config, k, None) for k in _LOGIT_TRANSFORMS):
        return None
    head = core.get_output_embeddings()
    decoder = core.get_decoder()
    return (decoder, head) if head is not None and decoder is not core else None


def supervised_logits(model: torch.nn.Module, batch: dict[str, Any], keep: torch.Tensor) -> torch.Tensor:
    """Logits at the positions ``keep`` marks (shape ``[keep.sum(), vocab]``).

    The LM head runs only on those positions — agent trajectories supervise a small share of their tokens,
    and the vocabulary projection and its softmax are a large part of a small model's step.
    """
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
    parts = _head_parts(model)
    if parts is None:
        return model(**inputs, use_cache=False).logits[keep]
    decoder, head = parts
    hidden = decoder(**inputs, use_cache=False).last_hidden_state
    return head(hidden[keep])


def weighted_nll(model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
    """``(Σ_t w_t · NLL_t, N)`` over the batch's supervised target tokens; the loss is their ratio, or the sum
    over the count of a whole accumulated step."""
    labels = batch["labels"]
    # position t predicts token t + 1: shift labels and weights left, nothing to predict after the last token
    targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
    weights = F.pad(batch["weights"][:, 1:], (0, 1))
    keep = targets != IGNORE_INDEX
    logits = supervised_logits(model, batch, keep)
    nll = F.cross_entropy(logits.float(), targets[keep], reduction="none")
    return (nll * weights[keep]).sum(), int(keep.sum())
