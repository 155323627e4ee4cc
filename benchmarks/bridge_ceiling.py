"""How far can YAMNet's own classes carry zero-shot ESC-50? (issue 9 diagnostics)

Three numbers on ESC-50 fold 1, all from the same YAMNet features (the ``yamnet`` expert):

1. **label bridge**: the shipped default model's bridge member through soundseek's own protocol
   (``evaluate_classes``: four prompt templates, argmax over the 50 class prompts).
2. **oracle one class**: for each ESC-50 class, the single AudioSet class whose (prior-scaled,
   mean-pooled) probability puts most of that class's clips in its top 8 — *chosen on the test
   clips themselves*.  No text model can map a class name to a better single AudioSet class, so
   this bounds every bridge that picks one class per query.
3. **supervised probe**: logistic regression trained *on fold-1 labels* (5-fold cross-validation
   inside fold 1, ~6 training clips per class) on the mean 1024-d YAMNet embedding and on the
   log mean class probabilities.  A few-shot supervised reference, not a zero-shot method.

Only diagnostics: nothing here is shipped, and none of these numbers chose a setting.

    PYTHONPATH=src python benchmarks/bridge_ceiling.py --out benchmarks/results/bridge_ceiling.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ESC = HERE.parent.parent / "shared" / "data" / "esc50-fold1"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--esc50", type=Path, default=ESC)
    ap.add_argument("--features", type=Path, default=None, help="feature store folder (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import tempfile

    from soundseek.eval.protocols import ModelEmbedder, default_audio_features, evaluate_classes, load_esc50
    from soundseek.experts import get_audio_expert
    from soundseek.features import FeatureStore
    from soundseek.models import load_model
    from soundseek.models.bridge import LabelBridge
    from soundseek.models.bridge_side import class_profile

    store = FeatureStore(args.features or tempfile.mkdtemp(prefix="ssk-ceiling-"))
    items, classes = load_esc50(args.esc50)
    feats_fn = default_audio_features("yamnet", store, progress=False)
    feats, failed = feats_fn(items)
    assert not failed, failed[:3]
    labels = np.array([int(it.meta["target"]) for it in items])
    expert = get_audio_expert("yamnet")

    # 1. the shipped bridge, soundseek's protocol
    default = load_model("default")
    bridge = next(m for m in getattr(default, "members", [default]) if isinstance(m, LabelBridge))
    cache = {}

    def cached(its):
        return cache.setdefault(id(its), feats_fn(its))

    res = evaluate_classes(ModelEmbedder(bridge, audio_features=cached, progress=False), items, classes, "esc50")
    out = {"bridge": {"zero_shot": res.zero_shot.accuracy, "map10": res.retrieval.map10}}

    # 2. oracle: one AudioSet class per ESC-50 class, chosen on the test clips
    prior = bridge.prior.detach().cpu().numpy()
    alpha = float(bridge.config.prior_alpha)
    P = class_profile(np.stack([expert.class_probs(f.frames).mean(0) for f in feats]), prior, alpha)
    choice = []
    for c in range(len(classes)):
        n = int((labels == c).sum())
        top = np.argsort(-P, axis=0, kind="stable")[:n]  # (n, 521): the n best clips per AudioSet class
        hits = (labels[top] == c).sum(0)
        choice.append(int(np.argmax(hits)))
    Q = np.zeros((len(classes), P.shape[1]), np.float32)
    Q[np.arange(len(classes)), choice] = 1.0
    S = P @ Q.T
    out["oracle_one_class"] = {"zero_shot": float((S.argmax(1) == labels).mean() * 100),
                               "classes": {classes[c]: expert.class_names[j] for c, j in enumerate(choice)}}

    # 3. supervised few-shot probe inside fold 1 (5-fold CV)
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    X_emb = np.stack([np.asarray(f.frames).mean(0) for f in feats])
    X_prob = np.log(np.stack([expert.class_probs(f.frames).mean(0) for f in feats]) + 1e-4)
    for name, X in [("probe_embedding_1024", X_emb), ("probe_log_probs_521", X_prob)]:
        X = (X - X.mean(0)) / (X.std(0) + 1e-6)
        accs = []
        for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(X, labels):
            clf = LogisticRegression(C=0.1, max_iter=3000).fit(X[tr], labels[tr])
            accs.append(float((clf.predict(X[te]) == labels[te]).mean() * 100))
        out[name] = {"accuracy_mean": float(np.mean(accs)), "accuracy_folds": accs}

    out["meta"] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "clips": len(items),
                   "machine": f"{platform.processor() or platform.machine()}, python {platform.python_version()}"}
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
