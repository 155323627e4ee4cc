"""``soundseek train CONFIG.yaml``: train a retrieval model from a YAML recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def train_command(
    config: Path = typer.Argument(
        ...,
        help="training recipe (YAML), e.g. src/soundseek/train/recipes/default.yaml from the root of a repository "
        "checkout (it reads the sfx-corpus audio from ../shared/data/sfx-corpus; elsewhere set data.captions_csv "
        "and data.audio_root)",
    ),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="output folder (default: out_dir in the YAML)"),
    epochs: Optional[int] = typer.Option(None, help="override the number of epochs"),
    seed: Optional[int] = typer.Option(None, help="override the random seed"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
) -> None:
    """Train on cached expert features and save weights, config, metrics and a training curve."""
    import torch

    from .config import TrainConfig, check_ranges
    from .pipeline import run_training

    try:
        cfg = TrainConfig.from_yaml(config)
    except (FileNotFoundError, ValueError, TypeError) as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(2)
    if out is not None:
        cfg.out_dir = str(out)  # the saved train_config.yaml says where this run went
    if epochs is not None:
        cfg.epochs = epochs
    if seed is not None:
        cfg.seed = seed
    try:
        check_ranges(cfg)  # the overrides too, before any feature is computed
    except ValueError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(2)
    torch.set_num_threads(max(1, cfg.num_threads))
    try:
        result = run_training(cfg, progress=not quiet)
    except (FileNotFoundError, ValueError, KeyError) as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"best epoch {result.best_epoch}/{len(result.history)}: val geo-mean R@1/5/10 = {result.best_score:.2f} %"
    )
    if result.extra.get("failed"):
        typer.echo(f"skipped {len(result.extra['failed'])} file(s) that could not be decoded (see metrics.json)")
    typer.echo(f"checkpoint: {result.model_dir}")
    typer.echo(f"metrics + curve: {result.out_dir / 'metrics.json'}, {result.out_dir / 'curve.png'}")


def register(app: typer.Typer) -> None:
    """Add ``train`` to the soundseek CLI."""
    app.command("train")(train_command)
