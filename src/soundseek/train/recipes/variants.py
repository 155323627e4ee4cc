"""Train variants of the default recipe and report them side by side (for docs/training.md).

    python -m soundseek.train.recipes.variants --out runs/variants [--esc50 ../shared/data/esc50-fold1]
    python -m soundseek.train.recipes.variants --recipe default --out runs/variants2 --seeds 0,1  # round 2

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
DEFAULT_RECIPE = Path(__file__).resolve().parent / "default.yaml"

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

# Variants of the *shipped* recipe (default.yaml, run with --recipe default): the ideas the first
# round did not try.  The ``aisfx_heads_*`` experts are aisfx frames plus the checkpoint's own
# classifier heads (soundseek.experts.aisfx_heads); ``aisfx_heads`` is ``embed+penult``.
_HEADS = {"aisfx_heads": 1664, "aisfx_heads_penult": 1152, "aisfx_heads_logits": 378,
          "aisfx_heads_embed_logits": 890, "aisfx_heads_embed_probs": 890}


def _heads(name: str) -> dict:
    return {"model.params.audio_expert": name, "model.params.audio_dim": _HEADS[name]}


SHIPPED_VARIANTS: dict[str, tuple[str, dict]] = {
    "shipped": ("the shipped recipe (default.yaml, = combo_a) re-run as the reference", {}),
    "heads_embed_penult": ("aisfx 512 + its 9 classifier heads' 128-d penultimate activations (1664-d)",
                           _heads("aisfx_heads")),
    "heads_penult": ("only the 9 heads' penultimate activations (1152-d)", _heads("aisfx_heads_penult")),
    "heads_logits": ("only the 9 heads' logits (378-d)", _heads("aisfx_heads_logits")),
    "heads_embed_logits": ("aisfx 512 + the 9 heads' logits (890-d)", _heads("aisfx_heads_embed_logits")),
    "heads_embed_probs": ("aisfx 512 + the 9 heads' per-head softmax (890-d)", _heads("aisfx_heads_embed_probs")),
    "long80": ("80 epochs, patience 20", {"epochs": 80, "patience": 20}),
    "temp0.05": ("NT-Xent temperature 0.05", {"loss.temperature": 0.05}),
    "crop32": ("random crops of 32 frames (~37 s) instead of 16", {"data.max_frames": 32}),
    "hardneg16": ("hard-negative batches: labels k-means-grouped (16 groups) by caption meaning, "
                  "all batches group by group (recipes/hard_negatives.py)", {"_hard_groups": 16}),
    "hardneg32_half": ("hard-negative batches, 32 label groups, half of the batches hard, half random",
                       {"_hard_groups": 32, "_hard_fraction": 0.5}),
    "text_frozen": ("text side = minilm itself: identity text head (frozen, 384-d space), only the audio "
                    "head learns to map into minilm's space", {"model.params.text_hidden": 0,
                                                                 "model.params.embed_dim": 384,
                                                                 "_text_identity": "frozen"}),
    "text_identity_init": ("linear text head initialised at the identity (384-d space), trainable",
                           {"model.params.text_hidden": 0, "model.params.embed_dim": 384,
                            "_text_identity": "init"}),
    "idinit_probs": ("text_identity_init + heads_embed_probs",
                     {"model.params.text_hidden": 0, "model.params.embed_dim": 384, "_text_identity": "init",
                      **_heads("aisfx_heads_embed_probs")}),
    "idinit_long80": ("text_identity_init + long80",
                      {"model.params.text_hidden": 0, "model.params.embed_dim": 384, "_text_identity": "init",
                       "epochs": 80, "patience": 20}),
    "frozen_probs": ("text_frozen + heads_embed_probs",
                     {"model.params.text_hidden": 0, "model.params.embed_dim": 384, "_text_identity": "frozen",
                      **_heads("aisfx_heads_embed_probs")}),
    "label_prompts": ("label caption in the ESC-50 prompt phrasings ('the sound of a {label}', "
                      "'{label} can be heard', 'a recording of {label}', '{label}')",
                      {"data.label_templates": ["the sound of a {label}", "{label} can be heard",
                                                "a recording of {label}", "{label}"]}),
}


def _register_head_experts() -> None:
    """Experiment-only names for the non-default outputs of the aisfx_heads expert."""
    from ...experts.aisfx_heads import AisfxHeadsExpert
    from ...experts.registry import register

    for name, output in (("aisfx_heads_penult", "penult"), ("aisfx_heads_logits", "logits"),
                         ("aisfx_heads_embed_logits", "embed+logits"),
                         ("aisfx_heads_embed_probs", "embed+probs")):
        register(name, "audio", f"aisfx_heads with output={output} (experiments)")(
            lambda output=output, **kw: AisfxHeadsExpert(output=output, **kw))


def apply_overrides(cfg, overrides: dict):
    for key, value in overrides.items():
        if key.startswith("_"):  # sampler settings, not config keys (see _sampler)
            continue
        *path, last = key.split(".")
        obj = cfg
        for p in path:
            obj = obj[p] if isinstance(obj, dict) else getattr(obj, p)
        if isinstance(obj, dict):
            obj[last] = value
        else:
            setattr(obj, last, value)
    return cfg


def _text_identity(model, mode: str | None) -> None:
    """Start the (linear, square) text head at the identity; ``frozen`` keeps it there."""
    if not mode:
        return
    lin = model.text_head.net[-1]
    if lin.weight.shape[0] != lin.weight.shape[1]:
        raise ValueError("_text_identity needs a linear text head with embed_dim == text_dim")
    with torch.no_grad():
        lin.weight.copy_(torch.eye(lin.weight.shape[0]))
        lin.bias.zero_()
    if mode == "frozen":
        for p in model.text_head.parameters():
            p.requires_grad_(False)


def _sampler(overrides: dict):
    """The batch sampler a variant asks for: hard-negative groups, or the trainer's own."""
    import contextlib

    if "_hard_groups" not in overrides:
        return contextlib.nullcontext()
    from .hard_negatives import grouped_sampler

    return grouped_sampler(overrides["_hard_groups"], overrides.get("_hard_fraction", 1.0))


_ESC: dict = {}


def esc50_eval(model, root: Path) -> dict:
    """Zero-shot accuracy on ESC-50 (reporting only), with C1's prompt ensemble and a bare label."""
    import numpy as np

    from ...eval.protocols import (
        DEFAULT_TEMPLATES, ModelEmbedder, default_audio_features, default_text_features, evaluate_classes, load_esc50,
    )  # fmt: skip

    if "items" not in _ESC:  # features are the same for every variant: compute them once
        _ESC["items"], _ESC["classes"] = load_esc50(root)
        _ESC["text_fn"] = default_text_features(model.config.text_expert)
        _ESC["text"] = {}
    audio_key = ("audio", model.config.audio_expert)  # once per audio expert
    if audio_key not in _ESC:
        _ESC[audio_key] = default_audio_features(model.config.audio_expert, progress=False)(_ESC["items"])

    def text_features(texts):
        missing = [t for t in texts if t not in _ESC["text"]]
        if missing:
            _ESC["text"].update(zip(missing, _ESC["text_fn"](missing)))
        return np.stack([_ESC["text"][t] for t in texts])

    items, classes = _ESC["items"], _ESC["classes"]
    emb = ModelEmbedder(model, progress=False, audio_features=lambda _: _ESC[audio_key], text_features=text_features)
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
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--recipe", choices=("base", "default"), default="base",
                   help="base: the first round's variants of base.yaml; default: variants of the shipped recipe")
    a = p.parse_args(argv)
    recipe, variants = (RECIPE, VARIANTS) if a.recipe == "base" else (DEFAULT_RECIPE, SHIPPED_VARIANTS)
    if a.table_only:
        rows = list(json.loads((a.out / "variants.json").read_text()).values())
        (a.out / "variants.md").write_text(markdown(rows))
        print(markdown(rows))
        return 0
    torch.set_num_threads(a.threads)
    _register_head_experts()
    names = [n for n in a.only.split(",") if n] or list(variants)
    seeds = [int(s) for s in a.seeds.split(",")]
    a.out.mkdir(parents=True, exist_ok=True)
    results_path = a.out / "variants.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    data_cache: dict[str, object] = {}
    test_cache: dict[str, object] = {}
    for name in names:
        desc, over = variants[name]
        for seed in seeds:
            cfg = apply_overrides(TrainConfig.from_yaml(recipe), over)
            cfg.seed = seed
            cfg.num_threads = a.threads
            model = build_model(cfg)
            key = json.dumps([cfg.to_dict()["data"], required_experts(model)], sort_keys=True)
            if key not in data_cache:
                data_cache[key] = prepare_data(cfg, model, progress=False)
            data = data_cache[key]
            t0 = time.perf_counter()
            _text_identity(model, over.get("_text_identity"))
            with _sampler(over):
                res = train_model(cfg, data.train, data.val, model=model, progress=False)
            secs = time.perf_counter() - t0
            save_run(res, cfg, a.out / f"{name}-s{seed}")
            experts = required_experts(model)
            test_key = json.dumps(experts)
            if test_key not in test_cache:
                items = [it for it in load_items(cfg) if it.split == "test"]
                test_cache[test_key], _ = build_feature_set(items, *experts, progress=False)
            tfs = test_cache[test_key]
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
            ("ESC-50 ZS prompts", "esc50_zs_prompts"), ("ESC-50 ZS label", "esc50_zs_label"),
            ("ESC-50 class mAP@10", "esc50_class_map10")]  # fmt: skip
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
