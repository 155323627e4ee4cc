"""Label bridge with AudioSet-ontology class texts: ESC-50 fold 1 (dev) and corpus val, per style.

    PYTHONPATH=src python benchmarks/ontology_bridge.py [--styles name name+description ...]
        [--data-root ../shared/data] [--feature-cache DIR] [--out results.json]

For each ``class_text`` style (soundseek.experts.audioset.CLASS_TEXT_STYLES) the shipped default
model's bridge is rebuilt the way the recipe builds it (same top-k, temperature, template, class
prior and exponent; only the class texts change) and scored alone and fused with the shipped
heads (same weights and query gate): ESC-50 fold 1 zero-shot accuracy and class-query mAP@10
(the `soundseek evaluate -p esc50` protocol, 4 prompt templates) and corpus **val** t2a R@10
(both sfx corpora).  Every style scored here counts as a look at fold 1 (docs/training.md).
The corpus test split is not touched.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT / "src"))
    import torch

    from soundseek.data.sfx_corpus import load_sfx_corpora
    from soundseek.eval import protocols as P
    from soundseek.experts.audioset import CLASS_TEXT_STYLES
    from soundseek.features import FeatureStore
    from soundseek.models import load_model
    from soundseek.models.bridge import LabelBridge
    from soundseek.models.ensemble import EnsembleModel

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--styles", nargs="+", default=list(CLASS_TEXT_STYLES))
    p.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--feature-cache", type=Path, default=None)
    p.add_argument("--gate-tau", type=float, nargs="*", default=[], help="extra gate tau values to score per style")
    p.add_argument("--gate-on-names", action="store_true",
                   help="also score the fused model with the gate measuring cosines to the bare names' vectors")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(1)

    shipped = load_model("default")
    old = shipped.members[0]
    heads, weights, gate = shipped.members[1:], [float(w) for w in shipped.weights], shipped.gate
    store = FeatureStore(a.feature_cache) if a.feature_cache else None
    esc_items, esc_classes = P.load_esc50(a.data_root / "esc50-fold1")
    val_items = load_sfx_corpora(split="val")

    def score(model) -> dict:
        emb = P.ModelEmbedder(model, store=store, progress=False)
        esc = P.evaluate_classes(emb, esc_items, esc_classes, "ESC-50 fold 1", n_random_runs=1)
        val = P.evaluate_caption_retrieval(emb, val_items, "corpus val", n_random_runs=1)
        return {"esc50_zero_shot": round(esc.zero_shot.accuracy, 1), "esc50_map10": round(esc.retrieval.map10, 1),
                "val_t2a_r10": round(val.report.t2a.r10, 1)}

    name_vectors = old.class_vectors.detach().cpu().numpy()  # "the sound of {name}" (the shipped bridge)

    class NameGated(EnsembleModel):
        """The gate reads the cosine to the nearest *name*, whatever texts the bridge embeds."""

        def query_weights(self, sentence):
            share = self.gate.bridge_share(sentence.detach().float().cpu().numpy(), name_vectors)
            return torch.from_numpy(self.gate.member_weights(share, self.weights.cpu().numpy()))

    rows = []
    for style in a.styles:
        c = old.config
        bridge = LabelBridge.build(c.audio_expert, c.text_expert, c.top_k, c.temperature, c.name_template,
                                   prior=old.prior.numpy(), prior_alpha=c.prior_alpha,
                                   prior_source=c.prior_source, class_text=style)
        variants = [("bridge", bridge), ("fused", EnsembleModel([bridge, *heads], weights, gate=gate).eval())]
        if a.gate_on_names:
            variants.append(("fused, gate on names", NameGated([bridge, *heads], weights, gate=gate).eval()))
        for tau in a.gate_tau:
            g = type(gate)(**{**gate.to_dict(), "tau": tau})
            variants.append((f"fused tau {tau}", EnsembleModel([bridge, *heads], weights, gate=g).eval()))
        for what, m in variants:
            row = {"class_text": style, "model": what, **score(m)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if a.out:
        a.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
