"""Reproduce the shipped default model from the sfx-corpus in one command.

    python -m soundseek.train.recipes.default [--corpus ../shared/data/sfx-corpus] [--out runs/default]

Trains ``default.yaml`` (train split; the val split selects the checkpoint), reports the
untouched test split once, and installs the heads into ``soundseek/assets/models/default/``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch

RECIPE = Path(__file__).resolve().parent / "default.yaml"
INSTALL_FILES = ("model.safetensors", "config.json", "metrics.json")


def test_metrics(cfg, model, store=None, progress: bool = False) -> dict:
    """t2a/a2t metrics of ``model`` on the corpus test split (reported, never used for choices)."""
    from ...eval.metrics import retrieval_metrics
    from ..data import build_feature_set
    from ..pipeline import load_items
    from ..trainer import required_experts, similarity_matrix

    items = [it for it in load_items(cfg) if it.split == "test"]
    if not items:
        return {}
    audio, text = required_experts(model)
    fs, _ = build_feature_set(items, audio, text, store=store, progress=progress)
    rep = retrieval_metrics(similarity_matrix(model, fs), fs.caption_clip)
    return {"test": rep.to_dict(), "test_clips": fs.n_clips, "test_captions": fs.n_captions}


def install(model_dir: Path, recipe: Path, target: Path) -> Path:
    """Copy the trained heads (+ config, metrics, the recipe used) into the package assets."""
    target.mkdir(parents=True, exist_ok=True)
    for name in INSTALL_FILES:
        if (model_dir / name).is_file():
            shutil.copyfile(model_dir / name, target / name)
    shutil.copyfile(recipe, target / "train_config.yaml")  # relative paths: no machine paths shipped
    for f in target.iterdir():
        f.chmod(0o644)
    return target


def main(argv: list[str] | None = None) -> int:
    from ...models import default_model_dir
    from ..config import TrainConfig
    from ..pipeline import run_training

    p = argparse.ArgumentParser(prog="python -m soundseek.train.recipes.default", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=RECIPE, help="the recipe (default: default.yaml next to this file)")
    p.add_argument("--corpus", type=Path, default=None, help="the sfx-corpus folder (default: from the recipe)")
    p.add_argument("--out", type=Path, default=Path("runs/default"), help="run folder (checkpoint, curve, metrics)")
    p.add_argument("--no-install", action="store_true", help="do not copy the heads into the package assets")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)

    cfg = TrainConfig.from_yaml(a.config)
    if a.corpus is not None:
        cfg.data.audio_root = str(a.corpus.resolve())
    torch.set_num_threads(max(1, cfg.num_threads))
    result = run_training(cfg, out_dir=a.out, progress=not a.quiet)
    test = test_metrics(cfg, result.model)
    metrics_path = a.out / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics.update(test)
    metrics_path.write_text(json.dumps(metrics, indent=2, default=_np) + "\n")
    model_metrics = result.model_dir / "metrics.json"
    mm = json.loads(model_metrics.read_text()) if model_metrics.is_file() else {}
    mm.update(test)
    mm.pop("failed", None)
    model_metrics.write_text(json.dumps(mm, indent=2, default=_np) + "\n")

    print(f"best epoch {result.best_epoch}: val geo-mean R@1/5/10 {result.best_score:.2f} %")
    if test:
        t = test["test"]["t2a"]
        print(f"test t2a ({test['test_clips']} clips): R@1 {t['r1']:.1f}  R@5 {t['r5']:.1f}  R@10 {t['r10']:.1f}")
    print(f"run: {a.out}")
    if not a.no_install:
        target = install(result.model_dir, a.config, default_model_dir())
        size = sum(f.stat().st_size for f in target.iterdir())
        print(f"installed default model into {target} ({size / 1e6:.2f} MB)")
    return 0


def _np(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    raise TypeError(type(x).__name__)


if __name__ == "__main__":
    raise SystemExit(main())
