"""`soundseek experiment`: kept apart from :mod:`.experiment` so the CLI starts without torch."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``soundseek experiment CONFIG [--seeds N] [--out DIR]`` to a typer app."""

    @app.command("experiment")
    def experiment_cmd(
        config: Path = typer.Argument(..., exists=True, dir_okay=False, help="experiment YAML"),
        seeds: int = typer.Option(None, "--seeds", min=1, help="number of seeds (overrides the config)"),
        out: Path = typer.Option(None, "--out", help="output folder (default: <out_dir>/<name>)"),
    ) -> None:
        """Train and evaluate the papers' models; write results.md/json, durations.md, scale.png."""
        import yaml

        from .experiment import ExperimentConfig, check_inputs, run_experiment

        try:
            cfg = ExperimentConfig.from_yaml(config)
            check_inputs(cfg)  # before minutes of feature extraction
        except (FileNotFoundError, ValueError, TypeError, yaml.YAMLError) as e:
            typer.secho(f"error: {e}", fg="red", err=True)
            raise typer.Exit(2) from None
        if seeds is not None:
            cfg.seeds = seeds
        folder = out or Path(cfg.out_dir) / cfg.name
        run_experiment(cfg, folder)
        typer.echo((folder / "results.md").read_text())
        typer.echo(f"results in {folder}")
