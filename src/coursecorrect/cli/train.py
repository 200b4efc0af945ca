"""``coursecorrect train``: masked, weighted SFT on conversations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coursecorrect.cli.common import load_spec, out_folder, print_summary
from coursecorrect.errors import CourseCorrectError


def train_command(
    data: Annotated[Path, typer.Option(help="Training conversations (JSONL, coursecorrect's conversation schema).")],
    config: Annotated[Path | None, typer.Option(help="Train config file (.toml/.yaml); flags override it.")] = None,
    model: Annotated[
        str | None, typer.Option(help="Model to start from: alias, folder or hub id.  [default: smollm2-135m-instruct]")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (model/ and train_summary.json).")] = None,
    epochs: Annotated[float | None, typer.Option(help="Passes over the data.  [default: 3]")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after N optimizer steps (overrides --epochs).")] = None,
    lora: Annotated[bool | None, typer.Option("--lora/--full", help="LoRA adapters, or all weights.")] = None,
    learning_rate: Annotated[
        float | None, typer.Option(help="Peak learning rate.  [default: 1e-4 LoRA, 2e-5 full]")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Rows per micro-batch.  [default: 4]")] = None,
    max_length: Annotated[int | None, typer.Option(help="Tokens per example.  [default: 2048]")] = None,
    packing: Annotated[bool | None, typer.Option("--packing/--no-packing", help="Pack examples into rows.")] = None,
    mix_data: Annotated[Path | None, typer.Option(help="General chat JSONL to mix in.")] = None,
    mix_ratio: Annotated[float | None, typer.Option(help="Share of the agent data in the mix.  [default: 0.2]")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of initialisation, data order and mix.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Fine-tune a model on conversations (loss on flagged assistant turns); save a merged model to OUT/model."""
    from coursecorrect.data.conversation import read_conversations
    from coursecorrect.train.sft import TrainConfig, train_sft

    if not data.is_file():
        raise CourseCorrectError(f"--data {data}: no such file")
    spec = load_spec(TrainConfig, config, {
        "model": model, "epochs": epochs, "max_steps": max_steps, "lora": lora, "learning_rate": learning_rate,
        "batch_size": batch_size, "max_length": max_length, "packing": packing,
        "mix_data": str(mix_data) if mix_data else None, "mix_ratio": mix_ratio, "seed": seed,
    }, "train")
    conversations = list(read_conversations(data))
    if not conversations:
        raise CourseCorrectError(f"--data {data}: no conversations")
    out = out_folder(out, f"train-{data.stem}-{Path(spec.model).name}-{'lora' if spec.lora else 'full'}")
    summary = train_sft(spec, conversations, out, progress=progress)
    print_summary(f"SFT of {spec.model} on {data}", summary, "model", summary["model_path"])
