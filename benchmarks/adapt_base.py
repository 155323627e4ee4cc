"""Leave-packages-out base model for the adaptation benchmark (benchmarks/adapt_library.py).

Retrains the shipped default's recipe (``soundseek.train.recipes.everyday``: YAMNet label bridge
+ MLP heads, query gate) on both sfx corpora WITHOUT the packages that the benchmark then uses as
"user libraries", so that the base model has never heard them.  Shorter than the shipped recipe:
``--seeds`` heads (default 3 instead of 5), same epochs / patience.  Cached: a second run with the
same arguments only prints where the model is.

    PYTHONPATH=src python benchmarks/adapt_base.py [--out runs/adapt_bench/base] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

#: The packages held out of training: varied, mostly well-named game sound effects.
LEAVE_OUT = ("openclonk", "wesnoth", "widelands")


def package_of(item) -> str:
    """The Debian package folder a corpus item comes from (``audio/<package>/...``)."""
    from soundseek.data.sfx_corpus import corpus_root_for

    rel = Path(item.audio_path).relative_to(corpus_root_for(item.meta["corpus"]))
    return rel.parts[1]


def train_base(out: Path, seeds: int = 3, leave_out=LEAVE_OUT, progress: bool = True) -> Path:
    import torch

    from soundseek.data.sfx_corpus import load_sfx_corpora
    from soundseek.features import FeatureStore
    from soundseek.models.bridge import LabelBridge
    from soundseek.train.config import TrainConfig
    from soundseek.train.data import build_feature_set
    from soundseek.train.recipes.everyday import RECIPE, BridgeSettings, class_prior, fuse, t2a
    from soundseek.train.trainer import train_model

    model_dir = out / "model"
    stamp = {"leave_out": sorted(leave_out), "seeds": seeds}
    if (out / "stamp.json").is_file() and json.loads((out / "stamp.json").read_text()) == stamp:
        return model_dir
    t0 = time.perf_counter()
    cfg = TrainConfig.from_yaml(RECIPE)
    torch.set_num_threads(1)
    store = FeatureStore(out.parent / "features")
    sets = {}
    for split in ("train", "val", "test"):
        items = [it for it in load_sfx_corpora(split=split) if package_of(it) not in leave_out]
        sets[split], _ = build_feature_set(items, ["yamnet"], ["minilm"], store=store, progress=progress,
                                           label_as_caption=(split == "train"), label_templates=("{label}",))
    print(" ".join(f"{k}: {v.n_clips} clips" for k, v in sets.items()), flush=True)
    heads, scores = [], []
    for seed in range(seeds):
        cfg.seed = seed
        res = train_model(cfg, sets["train"], sets["val"], progress=progress)
        heads.append(res.model.eval())
        scores.append(res.best_score)
        print(f"heads seed {seed}: best epoch {res.best_epoch} val geo-mean {res.best_score:.2f}", flush=True)
    s = BridgeSettings()
    bridge = LabelBridge.build(top_k=s.top_k, temperature=s.temperature, name_template=s.name_template,
                               prior=class_prior(sets["train"]), prior_alpha=s.prior_alpha,
                               prior_source=f"sfx corpora train split without {', '.join(sorted(leave_out))}")
    model = fuse(bridge, heads, s.bridge_weight, s.gate())
    model.save_pretrained(model_dir)
    metrics = {**stamp, "member_val_geo_mean": scores, "fused_test": t2a(model, sets["test"]),
               "train_clips": sets["train"].n_clips, "minutes": round((time.perf_counter() - t0) / 60, 1)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    (out / "stamp.json").write_text(json.dumps(stamp) + "\n")
    return model_dir


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/adapt_bench/base"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--leave-out", nargs="*", default=list(LEAVE_OUT), help="packages the base never hears")
    a = p.parse_args(argv)
    print(train_base(a.out, a.seeds, tuple(a.leave_out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
