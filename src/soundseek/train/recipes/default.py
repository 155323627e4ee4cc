"""Reproduce the shipped default model from the sfx-corpus in one command.

    python -m soundseek.train.recipes.default [--corpus ../shared/data/sfx-corpus] [--out runs/default]

Trains ``default.yaml`` (train split; the val split selects the checkpoint), reports the
untouched test split once, and installs the heads into ``soundseek/assets/models/default/``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ...models.pretrained import jsonable as json_default
from .common import install_model

RECIPE = Path(__file__).resolve().parent / "default.yaml"


def test_metrics(cfg, model, store=None, progress: bool = False, split: str = "test") -> dict:
    """t2a/a2t metrics of ``model`` on a corpus split (test: reported, never used for choices)."""
    from ...eval.metrics import retrieval_metrics
    from ..data import build_feature_set
    from ..pipeline import load_items
    from ..trainer import required_experts, similarity_matrix

    items = [it for it in load_items(cfg) if it.split == split]
    if not items:
        return {}
    audio, text = required_experts(model)
    fs, _ = build_feature_set(items, audio, text, store=store, progress=progress)
    rep = retrieval_metrics(similarity_matrix(model, fs), fs.caption_clip)
    return {split: rep.to_dict(), f"{split}_clips": fs.n_clips, f"{split}_captions": fs.n_captions}


def main(argv: list[str] | None = None) -> int:
    from ...models import shipped_model_dir
    from ..config import TrainConfig
    from ..pipeline import run_training

    p = argparse.ArgumentParser(prog="python -m soundseek.train.recipes.default", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=RECIPE, help="the recipe (default: default.yaml next to this file)")
    p.add_argument("--corpus", type=Path, default=None, help="the sfx-corpus folder (default: from the recipe)")
    p.add_argument("--out", type=Path, default=Path("runs/default"), help="run folder (checkpoint, curve, metrics)")
    p.add_argument("--no-install", action="store_true", help="do not copy the heads into the package assets")
    p.add_argument("--seeds", type=int, default=5,
                   help="train this many seeds and ship their ensemble (default 5: +1.9 val geo-mean over one model)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)

    cfg = TrainConfig.from_yaml(a.config)
    if a.corpus is not None:
        cfg.data.audio_root = str(a.corpus.resolve())
    torch.set_num_threads(max(1, cfg.num_threads))
    if a.seeds < 1:
        p.error("--seeds must be at least 1")
    runs = []
    for seed in range(a.seeds):  # one model per seed; several are shipped as an ensemble
        cfg.seed = seed
        out = a.out if a.seeds == 1 else a.out / f"seed{seed}"
        result = run_training(cfg, out_dir=out, progress=not a.quiet)
        print(f"seed {seed}: best epoch {result.best_epoch}, val geo-mean R@1/5/10 {result.best_score:.2f} %")
        runs.append(result)
    if a.seeds == 1:
        model, model_dir = runs[0].model, runs[0].model_dir
    else:
        from ...models.ensemble import EnsembleModel

        model = EnsembleModel([r.model for r in runs]).eval()
        model_dir = model.save_pretrained(a.out / "ensemble")
    metrics = {"seeds": a.seeds, "member_val_geo_mean": [r.best_score for r in runs]}
    metrics.update(test_metrics(cfg, model, split="val"))
    metrics.update(test_metrics(cfg, model))
    metrics["val_geo_mean"] = metrics["val"]["t2a"]["geometric_mean_r1_r5_r10"]
    (model_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=json_default) + "\n")
    (a.out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=json_default) + "\n")

    v, t = metrics["val"]["t2a"], metrics["test"]["t2a"]
    print(f"{'ensemble of ' + str(a.seeds) if a.seeds > 1 else 'model'}: val t2a R@1 {v['r1']:.1f} R@10 {v['r10']:.1f}; "
          f"test t2a ({metrics['test_clips']} clips): R@1 {t['r1']:.1f}  R@5 {t['r5']:.1f}  R@10 {t['r10']:.1f}")
    print(f"run: {a.out}")
    if not a.no_install:
        install_model(model_dir, shipped_model_dir("aisfx-minilm-v1"), a.config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
