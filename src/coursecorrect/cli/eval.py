"""``coursecorrect eval``: success of a model on an env split, or its revision ability."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coursecorrect.cli.common import env_options, load_spec, out_folder, print_summary
from coursecorrect.cli.preflight import check_model, check_tasks, output_folder
from coursecorrect.config import read_config_file
from coursecorrect.envs import ENV_OPTION_HELP
from coursecorrect.llm import BACKEND_HELP


def eval_command(
    config: Annotated[Path | None, typer.Option(help="Eval config file (.toml/.yaml); flags override it.")] = None,
    env: Annotated[str | None, typer.Option(help="Env name.  [default: textcraft]")] = None,
    model: Annotated[
        str | None, typer.Option(help="Model alias, folder, hub id, server model.  [default: smollm2-135m-instruct]")
    ] = None,
    backend: Annotated[str | None, typer.Option(help=BACKEND_HELP)] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL, with --backend openai.")] = None,
    split: Annotated[str | None, typer.Option(help="Task split: train, test or all.  [default: test]")] = None,
    limit: Annotated[int | None, typer.Option(help="Play only the first N tasks.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Actions per episode.  [default: 100]")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Episodes advanced together.  [default: 8]")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (0 = greedy).")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Tokens per agent turn.  [default: 128]")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (resumed if it exists).")] = None,
    revision_ability: Annotated[Path | None, typer.Option(
        "--revision-ability", help="Instead: continue the failed episodes of this eval folder from a random step "
        "(Agent-R's revision-ability protocol)."
    )] = None,
    max_rounds: Annotated[
        int | None, typer.Option(help="With --revision-ability: turns after the cut.  [default: 50]")
    ] = None,
    env_option: Annotated[list[str] | None, typer.Option(help=ENV_OPTION_HELP)] = None,
) -> None:
    """Evaluate a model on an env split: per-episode trajectories (episodes.jsonl) and a summary."""
    from coursecorrect.eval import EvalConfig, evaluate

    overrides = {
        "env.name": env, "env.max_steps": max_steps, "model.model": model, "model.backend": backend,
        "model.base_url": base_url, "split": split, "limit": limit, "agent.batch_size": batch_size,
        "agent.temperature": temperature, "agent.max_new_tokens": max_new_tokens, "agent.seed": seed,
        **env_options(env_option),
    }
    if revision_ability is not None:
        _revision_ability(overrides, revision_ability, max_rounds, out, config)
        return
    spec = load_spec(EvalConfig, config, overrides, "eval")
    out = out_folder(out, f"eval-{spec.env.name}-{Path(spec.model.model).name}-{spec.split}")
    check_tasks(spec.env, spec.split, spec.task_ids)
    check_model(spec.model)
    summary = evaluate(spec, out)
    print_summary(f"{spec.model.model} on {spec.env.name} {spec.split}", summary, "episodes and summary", out)


def _revision_ability(
    overrides: dict, failed: Path, max_rounds: int | None, out: Path | None, config: Path | None
) -> None:
    from coursecorrect.eval.revision_ability import RevisionAbilityConfig, revision_ability

    data = {key: value for key, value in (read_config_file(config) if config else {}).items() if key != "split"}
    overrides = {**overrides, "split": None, "failed": str(failed), "max_rounds": max_rounds}
    spec = load_spec(RevisionAbilityConfig, config, overrides, "eval", data)
    out = output_folder(out or failed.parent / f"{failed.name}-revision-{Path(spec.model.model).name}")
    check_model(spec.model)
    summary = revision_ability(spec, out)
    print_summary(f"revision ability of {spec.model.model} on {failed}", summary, "continued episodes and summary", out)
