"""Train variants of the default recipe and report them side by side (for docs/training.md).

    python -m soundseek.train.recipes.variants --out runs/variants [--esc50 ../shared/data/esc50-fold1]

Every variant is ``base.yaml`` plus a few overrides.  Columns: corpus val (what selects the
shipped model), corpus test, and -- only to *report* -- zero-shot accuracy on ESC-50 fold 1
(never used to choose anything).  Results go to ``variants.json`` and ``variants.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

RECIPE = Path(__file__).resolve().parent / "base.yaml"

# name -> (what changes, dotted overrides of default.yaml)
VARIANTS: dict[str, tuple[str, dict]] = {
    "default": ("base recipe: NT-Xent 0.07, hidden 256, embed 256, meanmax, label caption, masking", {}),
    "max_margin": ("max-margin ranking loss (margin 0.2) instead of NT-Xent", {"loss.name": "max_margin"}),
    "no_label_caption": ("class label not added as an extra caption", {"data.label_as_caption": False}),
    "label_sound_of": ("label caption phrased 'the sound of {label}'",
                       {"data.label_templates": ["the sound of {label}"]}),
    "label_multi": ("three label captions: '{label}', 'the sound of {label}', '{label} can be heard'",
                    {"data.label_templates": ["{label}", "the sound of {label}", "{label} can be heard"]}),
    "label_positives": ("clips with the same class label are positives, not negatives",
                        {"data.label_positives": True}),
    "all_captions": ("all captions of a clip per batch (multi-positive) instead of one sampled",
                     {"data.captions_per_clip": "all"}),
    "mean_pool": ("mean pooling only (no max)", {"model.params.pooling": "mean"}),
    "max_pool": ("max pooling only", {"model.params.pooling": "max"}),
    "no_augment": ("no time/feature masking",
                   {"augment.time_mask_prob": 0.0, "augment.feature_mask_prob": 0.0}),
    "embed128": ("shared space 128-d", {"model.params.embed_dim": 128}),
    "hidden512": ("hidden layer 512 (heads ~2x larger, ~3.9 MB)", {"model.params.hidden": 512}),
    "embed512": ("shared space 512-d", {"model.params.embed_dim": 512}),
    "text_linear": ("linear text head (audio head stays an MLP)", {"model.params.text_hidden": 0}),
    "both_linear": ("linear heads on both sides", {"model.params.text_hidden": 0, "model.params.audio_hidden": 0}),
    "wd1e-3": ("weight decay 1e-3 (10x)", {"optim.weight_decay": 1e-3}),
    "dropout0.5": ("dropout 0.5", {"model.params.dropout": 0.5}),
    "temp_learn": ("learnable NT-Xent temperature", {"loss.learnable_temperature": True}),
    "temp0.1": ("NT-Xent temperature 0.1", {"loss.temperature": 0.1}),
    "no_input_norm": ("no LayerNorm on expert features", {"model.params.input_norm": False}),
    "batch128": ("batch 128 (more negatives)", {"batch_size": 128}),
    "text_noise": ("Gaussian noise (10 % RMS) on sentence vectors", {"augment.text_noise": 0.1}),
    "combo_a": ("text_noise + label_positives + embed 512",
                {"augment.text_noise": 0.1, "data.label_positives": True, "model.params.embed_dim": 512}),
    "combo_b": ("text_noise + label_multi + linear text head + embed 512",
                {"augment.text_noise": 0.1, "model.params.text_hidden": 0, "model.params.embed_dim": 512,
                 "data.label_templates": ["{label}", "the sound of {label}", "{label} can be heard"]}),
}


def apply_overrides(cfg, overrides: dict):
    for key, value in overrides.items():
        *path, last = key.split(".")
        obj = cfg
        for p in path:
            obj = obj[p] if isinstance(obj, dict) else getattr(obj, p)
        if isinstance(obj, dict):
            obj[last] = value
        else:
            setattr(obj, last, value)
    return cfg


_ESC: dict = {}


def esc50_eval(model, root: Path) -> dict:
    """Zero-shot accuracy on ESC-50 (reporting only), with C1's prompt ensemble and a bare label."""
    import numpy as np

    from ...eval.protocols import (
        DEFAULT_TEMPLATES, ModelEmbedder, _default_audio_features, _default_text_features, evaluate_classes, load_esc50,
    )  # fmt: skip

    if "items" not in _ESC:  # features are the same for every variant: compute them once
        _ESC["items"], _ESC["classes"] = load_esc50(root)
        _ESC["audio"] = _default_audio_features(model.config.audio_expert, progress=False)(_ESC["items"])
        _ESC["text_fn"] = _default_text_features(model.config.text_expert)
        _ESC["text"] = {}

    def text_features(texts):
        missing = [t for t in texts if t not in _ESC["text"]]
        if missing:
            _ESC["text"].update(zip(missing, _ESC["text_fn"](missing)))
        return np.stack([_ESC["text"][t] for t in texts])

    items, classes = _ESC["items"], _ESC["classes"]
    emb = ModelEmbedder(model, progress=False, audio_features=lambda _: _ESC["audio"], text_features=text_features)
    ens = evaluate_classes(emb, items, classes, "esc50", templates=DEFAULT_TEMPLATES)
    bare = evaluate_classes(emb, items, classes, "esc50", templates=("{}",))
    return {
        "esc50_zs_prompts": ens.zero_shot.accuracy,
        "esc50_zs_label": bare.zero_shot.accuracy,
        "esc50_class_map10": ens.retrieval.map10,
    }


def main(argv: list[str] | None = None) -> int:
    from ...eval.metrics import retrieval_metrics
    from ..config import TrainConfig
    from ..data import build_feature_set
    from ..pipeline import load_items, prepare_data
    from ..trainer import build_model, required_experts, save_run, similarity_matrix, train_model

    p = argparse.ArgumentParser(prog="python -m soundseek.train.recipes.variants")
    p.add_argument("--out", type=Path, default=Path("runs/variants"))
    p.add_argument("--esc50", type=Path, default=None, help="ESC-50 folder: report zero-shot accuracy")
    p.add_argument("--only", default="", help="comma-separated variant names")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (val/test averaged)")
    p.add_argument("--table-only", action="store_true", help="only rewrite variants.md from variants.json")
    a = p.parse_args(argv)
    if a.table_only:
        rows = list(json.loads((a.out / "variants.json").read_text()).values())
        (a.out / "variants.md").write_text(markdown(rows))
        print(markdown(rows))
        return 0
    torch.set_num_threads(1)
    names = [n for n in a.only.split(",") if n] or list(VARIANTS)
    seeds = [int(s) for s in a.seeds.split(",")]
    a.out.mkdir(parents=True, exist_ok=True)
    results_path = a.out / "variants.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    data_cache: dict[str, object] = {}
    test_cache: dict[str, object] = {}
    for name in names:
        desc, over = VARIANTS[name]
        for seed in seeds:
            cfg = apply_overrides(TrainConfig.from_yaml(RECIPE), over)
            cfg.seed = seed
            key = json.dumps(cfg.to_dict()["data"], sort_keys=True)
            model = build_model(cfg)
            if key not in data_cache:
                data_cache[key] = prepare_data(cfg, model, progress=False)
            data = data_cache[key]
            t0 = time.perf_counter()
            res = train_model(cfg, data.train, data.val, model=model, progress=False)
            secs = time.perf_counter() - t0
            save_run(res, cfg, a.out / f"{name}-s{seed}")
            if "test" not in test_cache:
                items = [it for it in load_items(cfg) if it.split == "test"]
                test_cache["test"], _ = build_feature_set(items, *required_experts(model), progress=False)
            tfs = test_cache["test"]
            test = retrieval_metrics(similarity_matrix(res.model, tfs), tfs.caption_clip).t2a
            best = next(h for h in res.history if h["epoch"] == res.best_epoch)
            row = {
                "variant": name, "what": desc, "seed": seed, "best_epoch": res.best_epoch,
                "epochs_run": len(res.history), "train_seconds": round(secs, 1),
                "val_r1": best["val_r1"], "val_r5": best["val_r5"], "val_r10": best["val_r10"],
                "val_geo_mean": res.best_score,
                "test_r1": test.r1, "test_r5": test.r5, "test_r10": test.r10, "test_geo_mean": test.geometric_mean,
                "size_bytes": (a.out / f"{name}-s{seed}" / "model" / "model.safetensors").stat().st_size,
            }  # fmt: skip
            if a.esc50 is not None:
                row.update(esc50_eval(res.model, a.esc50))
            results[f"{name}-s{seed}"] = row
            results_path.write_text(json.dumps(results, indent=2) + "\n")
            print(json.dumps(row), flush=True)
    (a.out / "variants.md").write_text(markdown(list(results.values())))
    print(markdown(list(results.values())))
    return 0


def markdown(rows: list[dict]) -> str:
    """One line per variant: metrics averaged over its seeds, sorted by validation score."""
    cols = [("val R@1", "val_r1"), ("val R@10", "val_r10"), ("val geo", "val_geo_mean"),
            ("test R@1", "test_r1"), ("test R@10", "test_r10"), ("test geo", "test_geo_mean"),
            ("ESC-50 ZS prompts", "esc50_zs_prompts"), ("ESC-50 ZS label", "esc50_zs_label")]  # fmt: skip
    by_variant: dict[str, list[dict]] = {}
    for r in rows:
        by_variant.setdefault(r["variant"], []).append(r)

    def mean(rs, key):
        vals = [r[key] for r in rs if isinstance(r.get(key), (int, float))]
        return sum(vals) / len(vals) if vals else None

    order = sorted(by_variant, key=lambda v: -(mean(by_variant[v], "val_geo_mean") or 0))
    out = ["| variant | seeds | " + " | ".join(c for c, _ in cols) + " | what |",
           "|---|---:|" + "---:|" * len(cols) + "---|"]  # fmt: skip
    for v in order:
        rs = by_variant[v]
        cells = [("-" if (m := mean(rs, k)) is None else f"{m:.1f}") for _, k in cols]
        out.append(f"| {v} | {len(rs)} | " + " | ".join(cells) + f" | {rs[0]['what']} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
