"""The quality profile's fusion: how much of the heads' share goes to the aisfx heads.

    PYTHONPATH=src python benchmarks/quality_fusion.py --aisfx-heads runs/quality/aisfx_heads \
        [--shares 0 0.25 0.5 0.75 1] [--feature-cache runs/quality/features] [--out results.json]
    PYTHONPATH=src python benchmarks/quality_fusion.py --test --models default quality ...

Sweep (default): for each share, the model of ``soundseek.train.recipes.quality.fuse_quality``
(the shipped default's label bridge, gate and yamnet heads + the aisfx heads, all over the
composite expert ``yamnet+aisfx``) is scored on ESC-50 fold 1 (zero-shot accuracy and
class-query mAP@10, the ``soundseek evaluate -p esc50`` protocol) and on the merged corpora's
**val** split (t2a R@1 / R@10).  Every share scored is a look at fold 1 (docs/training.md).  The
fusion rule picks the share: best val R@10 among shares within 2 points of the best fold-1 accuracy.

``--test``: the named models (``load_model`` specs) on the merged corpora's **test** split, overall
and per Debian package (t2a R@1 / R@10; a query ranks all test clips of both corpora).  Run once,
for the report; it chooses nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def package_of(item) -> str:
    """The Debian package a corpus file comes from (its first folder under audio/)."""
    parts = Path(item.meta.get("file", "")).parts
    return parts[1] if len(parts) > 2 and parts[0] == "audio" else (parts[0] if parts else "?")


def per_package(S: np.ndarray, caption_clip: np.ndarray, clip_pkg: list[str]) -> dict:
    """t2a R@1 / R@10 of each package's captions (ranked against all clips) and the count."""
    own = S[np.arange(len(S)), caption_clip][:, None]
    before = np.arange(S.shape[1])[None, :] < caption_clip[:, None]
    ranks = 1 + (S > own).sum(1) + ((S == own) & before).sum(1)  # the tie rule of soundseek.eval.metrics
    out = defaultdict(list)
    for q, c in enumerate(caption_clip):
        out[clip_pkg[c]].append(ranks[q])
    return {k: {"captions": len(v), "clips": clip_pkg.count(k), "r1": round(100 * np.mean(np.array(v) <= 1), 1),
                "r10": round(100 * np.mean(np.array(v) <= 10), 1)} for k, v in sorted(out.items())}


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT / "src"))
    import torch

    from soundseek.data.sfx_corpus import load_sfx_corpora
    from soundseek.eval import protocols as P
    from soundseek.features import FeatureStore
    from soundseek.models import load_model
    from soundseek.train.recipes.quality import fuse_quality

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--aisfx-heads", default="aisfx-minilm-v1", help="a saved ensemble of aisfx heads (or a shipped name)")
    p.add_argument("--n-heads", type=int, default=None, help="use the first N aisfx heads (default: all)")
    p.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    p.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--feature-cache", type=Path, default=None)
    p.add_argument("--test", action="store_true", help="score --models on the test split instead of the sweep")
    p.add_argument("--models", nargs="+", default=["default", "quality"])
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    store = FeatureStore(a.feature_cache) if a.feature_cache else None
    rows = []

    if a.test:
        from soundseek.eval import metrics as M

        items = [it for it in load_sfx_corpora(split="test") if it.captions]
        for spec in a.models:
            emb = P.ModelEmbedder(load_model(spec), store=store, progress=False)
            audio, keep, _ = emb.embed_audio(items)
            kept = [items[i] for i in keep]
            texts, caption_clip = P.flatten_captions(kept)
            S = emb.embed_text(texts) @ audio.T
            t = M.retrieval_metrics(S, caption_clip).t2a
            row = {"model": spec, "clips": len(kept), "captions": len(texts), "t2a_r1": round(t.r1, 1),
                   "t2a_r5": round(t.r5, 1), "t2a_r10": round(t.r10, 1), "t2a_map10": round(t.map10, 1),
                   "packages": per_package(S, caption_clip, [package_of(it) for it in kept])}
            rows.append(row)
            print(json.dumps(row), flush=True)
    else:
        default = load_model("default")
        heads = list(load_model(a.aisfx_heads).members)[: a.n_heads]
        esc_items, esc_classes = P.load_esc50(a.data_root / "esc50-fold1")
        val_items = load_sfx_corpora(split="val")
        for share in a.shares:
            model = fuse_quality(default, heads, share)
            emb = P.ModelEmbedder(model, store=store, progress=False)
            esc = P.evaluate_classes(emb, esc_items, esc_classes, "ESC-50 fold 1", n_random_runs=1)
            val = P.evaluate_caption_retrieval(emb, val_items, "corpora val", n_random_runs=1)
            row = {"aisfx_share": share, "esc50_zero_shot": round(esc.zero_shot.accuracy, 1),
                   "esc50_map10": round(esc.retrieval.map10, 1), "val_t2a_r1": round(val.report.t2a.r1, 1),
                   "val_t2a_r10": round(val.report.t2a.r10, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        best = max(r["esc50_zero_shot"] for r in rows)
        pick = max((r for r in rows if r["esc50_zero_shot"] >= best - 2.0), key=lambda r: (r["val_t2a_r10"], r["val_t2a_r1"]))
        print(f"fusion rule: shares within 2 points of {best} % -> best val R@10: aisfx_share {pick['aisfx_share']}")
        rows.append({"rule_pick": pick["aisfx_share"], "fold1_looks": len(a.shares)})
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
