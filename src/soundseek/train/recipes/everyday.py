"""The shipped default model: YAMNet label bridge fused with trained heads, in one command.

    python -m soundseek.train.recipes.everyday [--seeds 5] [--out runs/everyday] [--no-install]

1. Features: yamnet frames of both sfx corpora (``soundseek.data.sfx_corpus.load_sfx_corpora``),
   minilm sentence vectors of their captions (cached in a feature store).
2. Heads: ``--seeds`` dual encoders of ``everyday.yaml`` (train split; val split stops them).
3. Bridge: :class:`~soundseek.models.bridge.LabelBridge` over YAMNet's 521 AudioSet classes, with
   the class prior measured on the corpora's *training* clips.
4. Fusion: an :class:`~soundseek.models.ensemble.EnsembleModel` — bridge weight ``--bridge-weight``,
   the heads share the rest — servable by the index as one vector per window.

The bridge settings and the fusion weight were chosen on ESC-50 fold 1, the development set for
zero-shot choices (never trained on; docs/training.md lists every choice).  The corpus test
split is reported once at the end and never used for a choice.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ...models.pretrained import jsonable as json_default
from .common import install_model

RECIPE = Path(__file__).resolve().parent / "everyday.yaml"


@dataclass
class BridgeSettings:
    """The label bridge's settings of the shipped model (chosen on ESC-50 fold 1, see docs)."""

    top_k: int = 10
    temperature: float = 0.1
    name_template: str = "the sound of {}"
    # what each class is embedded as: "name" (the template filled with the class name) or an
    # AudioSet-ontology style (soundseek.experts.audioset.CLASS_TEXT_STYLES); docs/training.md
    # round 13: descriptions help the bridge alone but not the fused model, so "name" stays
    class_text: str = "name"
    prior_alpha: float = 0.5
    bridge_weight: float = 0.6  # the bridge's fixed weight (audio-side scaling; its share without a gate)
    # query-adaptive share of the bridge (soundseek.models.query_gate): gate_lo for descriptive queries,
    # gate_hi for queries that name a class, ramp across gate_tau ± gate_width/2 of the query's cosine
    # to its nearest class name; use_gate=False: fixed shares (bridge_weight)
    use_gate: bool = True
    gate_lo: float = 0.3
    gate_hi: float = 0.8
    gate_tau: float = 0.6
    gate_width: float = 0.05

    def gate(self) -> dict | None:
        if not self.use_gate:
            return None
        return {"member": 0, "lo": self.gate_lo, "hi": self.gate_hi, "tau": self.gate_tau, "width": self.gate_width}


def corpus_feature_sets(split_names=("train", "val", "test"), store=None, progress=False, which=None):
    """FeatureSets (yamnet + minilm) of the merged corpora's splits; train also gets label captions."""
    from ...data.sfx_corpus import load_sfx_corpora
    from ..data import build_feature_set

    kw = {} if which is None else {"which": which}
    out = {}
    for split in split_names:
        items = load_sfx_corpora(split=split, **kw)
        fs, failed = build_feature_set(items, ["yamnet"], ["minilm"], store=store, progress=progress,
                                       label_as_caption=(split == "train"), label_templates=("{label}",))
        out[split] = fs
    return out


def class_prior(fs) -> np.ndarray:
    """Mean YAMNet class probability over a feature set's clips (each clip counts once)."""
    from ...experts.tagger import tagger_for

    tagger = tagger_for("yamnet")
    return np.mean([tagger.probs(f) for f in fs.audio["yamnet"]], axis=0).astype(np.float32)


def fuse(bridge, heads: list, bridge_weight: float, gate: dict | None = None):
    from ...models.ensemble import EnsembleModel

    if not heads:
        return bridge
    if not 0.0 <= bridge_weight <= 1.0:
        raise ValueError("bridge_weight must be in [0, 1]")
    if gate is not None and not 0.0 < bridge_weight < 1.0:
        gate = None  # a member at weight 0 cannot be gated back in: fixed shares (see EnsembleModel)
    rest = (1.0 - bridge_weight) / len(heads)
    return EnsembleModel([bridge, *heads], [bridge_weight] + [rest] * len(heads), gate=gate).eval()


def t2a(model, fs) -> dict:
    from ...eval.metrics import retrieval_metrics
    from ..trainer import similarity_matrix

    return retrieval_metrics(similarity_matrix(model, fs), fs.caption_clip).to_dict()


def main(argv: list[str] | None = None) -> int:
    from ...features import FeatureStore
    from ...models import default_model_dir
    from ...models.bridge import LabelBridge
    from ..config import TrainConfig
    from ..trainer import train_model

    p = argparse.ArgumentParser(prog="python -m soundseek.train.recipes.everyday", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/everyday"))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--bridge-weight", type=float, default=BridgeSettings.bridge_weight)
    p.add_argument("--no-gate", action="store_true", help="fixed shares instead of the query-adaptive fusion")
    p.add_argument("--feature-cache", type=Path, default=None, help="feature store folder (default: OUT/features)")
    p.add_argument("--no-install", action="store_true", help="do not copy the model into the package assets")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    if a.seeds < 0:
        p.error("--seeds must be >= 0")
    settings = BridgeSettings(bridge_weight=a.bridge_weight, use_gate=not a.no_gate)
    cfg = TrainConfig.from_yaml(RECIPE)
    torch.set_num_threads(max(1, cfg.num_threads))
    store = FeatureStore(a.feature_cache or a.out / "features")
    sets = corpus_feature_sets(store=store, progress=not a.quiet)
    print(" ".join(f"{k}: {v.n_clips} clips / {v.n_captions} captions" for k, v in sets.items()))

    heads, member_scores = [], []
    for seed in range(a.seeds):
        cfg.seed = seed
        res = train_model(cfg, sets["train"], sets["val"], progress=not a.quiet)
        heads.append(res.model.eval())
        member_scores.append(res.best_score)
        print(f"heads seed {seed}: best epoch {res.best_epoch}, val geo-mean {res.best_score:.2f}")
    prior = class_prior(sets["train"])
    bridge = LabelBridge.build(top_k=settings.top_k, temperature=settings.temperature,
                               name_template=settings.name_template, class_text=settings.class_text, prior=prior,
                               prior_alpha=settings.prior_alpha, prior_source="sfx corpora, train split")
    model = fuse(bridge, heads, settings.bridge_weight, settings.gate())

    metrics: dict = {"seeds": a.seeds, "member_val_geo_mean": member_scores, "bridge": asdict(settings)}
    for name, m in (("fused", model), ("bridge", bridge)) + ((("heads", fuse(bridge, heads, 0.0)),) if heads else ()):
        for split in ("val", "test"):
            metrics[f"{name}_{split}"] = t2a(m, sets[split])
    metrics["test_clips"], metrics["test_captions"] = sets["test"].n_clips, sets["test"].n_captions
    model_dir = model.save_pretrained(a.out / "model")
    (a.out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=json_default) + "\n")
    (model_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, default=json_default) + "\n")
    for name in ("bridge", "heads", "fused"):
        if f"{name}_test" in metrics:
            t = metrics[f"{name}_test"]["t2a"]
            print(f"{name:6s} test t2a R@1 {t['r1']:.1f}  R@5 {t['r5']:.1f}  R@10 {t['r10']:.1f}  mAP@10 {t['map10']:.1f}")
    if not a.no_install:
        install_model(model_dir, default_model_dir(), RECIPE,
                      {"recipe.json": {"recipe": "soundseek.train.recipes.everyday", "bridge": asdict(settings)}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
