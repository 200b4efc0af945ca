"""Divergence guards shared by the trainers: a non-finite loss stops training, non-finite weights are never saved."""

from __future__ import annotations

from typing import Any

import torch

from coursecorrect.errors import CourseCorrectError

_ADVICE = "lower the learning rate, or check the data (weights, rewards)"


class TrainingError(CourseCorrectError):
    """Training diverged: its loss or its weights are not finite."""


class FiniteLoss:
    """A mixin for a transformers ``Trainer``: stop at the first micro-batch whose loss is inf or NaN, before the
    optimizer applies its gradient. (A callback would not do: it sees the loss only in logs, averaged over
    ``logging_steps`` steps, with non-finite steps filtered out.)"""

    def training_step(self, model: torch.nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
        loss = super().training_step(model, inputs, num_items_in_batch)  # type: ignore[misc]
        if not torch.isfinite(loss).all():
            step = self.state.global_step + 1  # type: ignore[attr-defined]
            rate = self.args.learning_rate  # type: ignore[attr-defined]
            raise TrainingError(
                f"training stopped at step {step}: the loss is {float(loss)}; {_ADVICE} (learning rate {rate:g}); "
                "no model was saved"
            )
        return loss


def check_finite_weights(model: torch.nn.Module) -> None:
    """Raise :class:`TrainingError` if any parameter holds inf or NaN (so such a model is never saved)."""
    parameters = dict(model.named_parameters())
    bad = [name for name, p in parameters.items() if not torch.isfinite(p).all()]
    if bad:
        raise TrainingError(
            f"training made {len(bad)} of {len(parameters)} weight tensors non-finite (e.g. {bad[0]}); {_ADVICE}; "
            "no model was saved"
        )
