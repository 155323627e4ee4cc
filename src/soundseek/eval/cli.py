"""`soundseek evaluate`: wired into the main CLI with :func:`register`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to ``app``."""

    @app.command("evaluate")
    def evaluate(
        model: Optional[str] = typer.Option(None, "--model", "-m", help="'default' (the default), a model directory, "
                                            "or native:A+T"),
        protocol: list[str] = typer.Option(
            [], "--protocol", "-p", help="sfx | esc50 | clotho | audiocaps | sounddescs (repeatable; default: all)"
        ),
        data_root: Optional[Path] = typer.Option(
            None, "--data-root", help="folder with sfx-corpus/, esc50-fold1/, clotho-mini/, audiocaps-mini/, "
            "sounddescs/ (default: $SOUNDSEEK_DATA)"
        ),
        esc50: Optional[Path] = typer.Option(None, "--esc50", help="ESC-50 folder (meta.csv + audio/)"),
        clotho: Optional[Path] = typer.Option(None, "--clotho", help="Clotho folder with the evaluation split"),
        audiocaps: Optional[Path] = typer.Option(None, "--audiocaps", help="AudioCaps folder with the test split"),
        sounddescs: Optional[Path] = typer.Option(None, "--sounddescs", help="SoundDescs folder (test_list.txt, "
                                                  "BBCSoundEffects.csv, audio/)"),
        sfx_root: Optional[Path] = typer.Option(None, "--sfx-root", help="sfx-corpus audio folder"),
        sfx_csv: Optional[Path] = typer.Option(None, "--sfx-csv", help="captions CSV (default: the recipe's)"),
        template: list[str] = typer.Option(
            [], "--template", "-t", help="class prompt template with {} (repeatable; default: 4 templates)"
        ),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="output folder (default: a new runs/eval/<time>)"),
        config: Optional[Path] = typer.Option(
            None, "--config", help="EvalConfig JSON, e.g. a run's config.json (options override it; results go to "
            "a new folder unless --out names one)"
        ),
        random_runs: Optional[int] = typer.Option(None, "--random-runs", help="random rankings averaged for the "
                                                  "baseline (default 20)"),
        seed: Optional[int] = typer.Option(None, "--seed", help="seed of the random baseline (default 0)"),
        feature_cache: Optional[Path] = typer.Option(
            None, "--feature-cache", help="the feature store's own folder (SOUNDSEEK_CACHE=DIR means DIR/features)"),
        strict: bool = typer.Option(False, "--strict", help="fail (exit 1, nothing written) when any clip of a "
                                    "protocol is missing or cannot be decoded, instead of leaving it out: for "
                                    "numbers comparable with a paper's"),
        no_strict: bool = typer.Option(False, "--no-strict", help="leave such clips out (the default; overrides a "
                                       "--config that says strict)"),
    ) -> None:
        """Evaluate a text-audio model: t2a/a2t retrieval tables, ESC-50 zero-shot, random baselines."""
        from ..models import ModelNotInstalledError
        from .runner import EvalConfig, IncompleteDataError, run_evaluation

        if strict and no_strict:
            typer.echo("error: --strict and --no-strict: give one of them", err=True)
            raise typer.Exit(2)

        try:
            base = json.loads(config.read_text()) if config else {}
        except (OSError, ValueError) as e:
            typer.echo(f"error: cannot read --config {config}: {getattr(e, 'strerror', None) or e}", err=True)
            raise typer.Exit(2)
        if not isinstance(base, dict):
            typer.echo(f"error: --config {config} is not a JSON object of EvalConfig fields", err=True)
            raise typer.Exit(2)
        saved_out = base.pop("output_dir", None)  # a re-run never overwrites the saved run's results...
        if saved_out and out is None:  # ...unless --out names that folder explicitly
            typer.echo(f"re-running {config}: results go to a new folder, not {saved_out} (--out DIR to choose)",
                       err=True)
        overrides = {  # an option given on the command line wins over --config, whatever its value
            "model": model,
            "protocols": list(protocol) or None,
            "templates": list(template) or None,
            "output_dir": str(out) if out else None,
            "data_root": str(data_root) if data_root else None,
            "esc50_dir": str(esc50) if esc50 else None,
            "clotho_dir": str(clotho) if clotho else None,
            "audiocaps_dir": str(audiocaps) if audiocaps else None,
            "sounddescs_dir": str(sounddescs) if sounddescs else None,
            "sfx_root": str(sfx_root) if sfx_root else None,
            "sfx_csv": str(sfx_csv) if sfx_csv else None,
            "n_random_runs": random_runs,
            "seed": seed,
            "feature_cache": str(feature_cache) if feature_cache else None,
            "strict": True if strict else False if no_strict else None,
        }
        try:
            cfg = EvalConfig.from_dict({**base, **{k: v for k, v in overrides.items() if v is not None}})
            run = run_evaluation(cfg, log=lambda m: typer.echo(m, err=True))
        except IncompleteDataError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None
        except (ValueError, ModelNotInstalledError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        typer.echo(run.to_markdown())
        if not run.results:
            typer.echo("error: no protocol could run (see the skipped reasons above)", err=True)
            raise typer.Exit(1)
        typer.echo(f"results written to {run.output_dir.resolve()}", err=True)
