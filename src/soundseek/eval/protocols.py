"""Evaluation protocols: caption retrieval (t2a/a2t) and ESC-50 style class evaluation.

A protocol needs two things from a model: one L2-normalised vector per audio clip and one per
text.  :class:`ModelEmbedder` provides them for any single-vector model (``encode_audio`` /
``encode_text``) from the expert features (``soundseek.features.extract_features`` for audio,
the registered text expert for captions); tests inject their own feature functions.
Every number comes with a seeded random baseline computed on the same data.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..data.types import AudioCaptions
from . import metrics as M

DEFAULT_TEMPLATES = ("the sound of a {}", "{} can be heard", "a recording of {}", "{}")

AudioFeatureFn = Callable[[list[AudioCaptions]], tuple[list[Any], list[tuple[str, str]]]]
TextFeatureFn = Callable[[list[str]], np.ndarray]


class NothingEmbeddedError(ValueError):
    """No clip of a protocol could be embedded (all undecodable): ``soundseek evaluate`` skips the
    protocol with this reason (``strict``: fails the run), the other protocols' results are kept."""


# --------------------------------------------------------------------------------------
# embedding


def default_audio_features(expert_name: str, store: Any = None, progress: bool = True) -> AudioFeatureFn:
    """items -> (AudioFeatures per kept item, failed [(path, error)]) via the feature store.

    The audio side :class:`ModelEmbedder` uses by default; public for callers (training recipes)
    that cache the features outside an embedder."""

    def fn(items: list[AudioCaptions]):
        from ..experts.registry import get_audio_expert
        from ..features import extract_features

        expert = get_audio_expert(expert_name)
        paths = sorted({str(it.audio_path) for it in items})
        report = extract_features(paths, expert, store=store, progress=progress)
        feats: dict[str, Any] = {str(k): v for k, v in report.features.items()}
        out, failed = [], [(str(p), str(e)) for p, e in report.failed]
        for it in items:
            f = feats.get(str(it.audio_path))
            if f is not None and (it.start_s is not None or it.end_s is not None):
                f = f.slice(it.start_s, it.end_s)
            out.append(f)
        return out, failed

    return fn


def default_text_features(expert_name: str) -> TextFeatureFn:
    """texts -> (N, D) sentence vectors of text expert ``expert_name`` (the default text side)."""
    def fn(texts: list[str]) -> np.ndarray:
        from ..experts.registry import get_text_expert

        return np.asarray(get_text_expert(expert_name).encode(list(texts)).sentence, dtype=np.float32)

    return fn


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class ModelEmbedder:
    """Turns audio items and texts into the model's shared space (numpy, L2-normalised rows)."""

    def __init__(
        self,
        model: Any,
        store: Any = None,
        batch_size: int = 64,
        progress: bool = True,
        audio_features: AudioFeatureFn | None = None,
        text_features: TextFeatureFn | None = None,
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        cfg = model.config
        self.audio_features = audio_features or default_audio_features(cfg.audio_expert, store, progress)
        self.text_features = text_features or default_text_features(cfg.text_expert)

    def embed_audio(self, items: list[AudioCaptions]) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
        """(embeddings of the kept items, indices of kept items, failed [(path, error)])."""
        import torch

        from ..models import pad_frames

        feats, failed = self.audio_features(items)
        keep = np.array([i for i, f in enumerate(feats) if f is not None], dtype=np.int64)
        out = []
        with torch.no_grad():
            for lo in range(0, len(keep), self.batch_size):
                frames, mask = pad_frames([feats[i].frames for i in keep[lo : lo + self.batch_size]])
                out.append(self.model.encode_audio(frames, mask).float().cpu().numpy())
        emb = np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
        return _l2(emb), keep, failed

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        sent = self.text_features(list(texts))
        out = []
        with torch.no_grad():
            for lo in range(0, len(sent), self.batch_size):
                x = torch.as_tensor(np.asarray(sent[lo : lo + self.batch_size], dtype=np.float32))
                out.append(self.model.encode_text(x).float().cpu().numpy())
        return _l2(np.concatenate(out))


# --------------------------------------------------------------------------------------
# caption retrieval


@dataclass
class CaptionRetrievalResult:
    """t2a/a2t metrics of one caption dataset, with a random baseline on the same mapping."""

    dataset: str
    report: M.RetrievalReport
    baseline: M.RetrievalReport
    n_audio: int
    n_captions: int
    failed: list[tuple[str, str]] = field(default_factory=list)
    # t2a where every clip with the caption's label is relevant (datasets with labels only)
    label_t2a: M.ClassRetrievalMetrics | None = None
    label_t2a_baseline: M.ClassRetrievalMetrics | None = None

    def to_dict(self) -> dict:
        d = {
            "dataset": self.dataset,
            "n_audio": self.n_audio,
            "n_captions": self.n_captions,
            "model": self.report.to_dict(),
            "random_baseline": self.baseline.to_dict(),
            "failed": [list(f) for f in self.failed],
        }
        if self.label_t2a is not None and self.label_t2a_baseline is not None:
            d["label_t2a"] = self.label_t2a.to_dict()
            d["label_t2a_random_baseline"] = self.label_t2a_baseline.to_dict()
        return d

    def to_markdown(self) -> str:
        head = f"### {self.dataset}: {self.n_audio} clips, {self.n_captions} captions\n\n"
        body = M.markdown_table([("model", self.report), ("random", self.baseline)])
        if self.label_t2a is not None and self.label_t2a_baseline is not None:
            m, b = self.label_t2a, self.label_t2a_baseline
            body += "\n" + "\n".join(
                [
                    "**Text → audio, any clip with the caption's label relevant**",
                    "",
                    "| | R@1 | R@5 | R@10 | mAP@10 |",
                    "|---|---:|---:|---:|---:|",
                    f"| model | {m.r1:.1f} | {m.r5:.1f} | {m.r10:.1f} | {m.map10:.1f} |",
                    f"| random | {b.r1:.1f} | {b.r5:.1f} | {b.r10:.1f} | {b.map10:.1f} |",
                    "",
                ]
            )
        tail = f"\n{len(self.failed)} clip(s) could not be decoded and were left out.\n" if self.failed else ""
        return head + body + tail


def flatten_captions(items: list[AudioCaptions]) -> tuple[list[str], np.ndarray]:
    """All captions and their audio index (position in ``items``)."""
    texts, t2a = [], []
    for i, it in enumerate(items):
        for c in it.captions:
            texts.append(c)
            t2a.append(i)
    return texts, np.asarray(t2a, dtype=np.int64)


def evaluate_caption_retrieval(
    embedder: ModelEmbedder,
    items: list[AudioCaptions],
    dataset: str,
    n_random_runs: int = 20,
    seed: int = 0,
) -> CaptionRetrievalResult:
    """Rank every clip for every caption (t2a) and every caption for every clip (a2t)."""
    items = [it for it in items if it.captions]
    if not items:
        raise ValueError(f"{dataset}: no clips with captions to evaluate")
    audio_emb, keep, failed = embedder.embed_audio(items)
    if len(keep) == 0:
        raise NothingEmbeddedError(f"{dataset}: none of the {len(items)} clips could be embedded; first error: "
                                   f"{failed[:1]}")
    kept = [items[i] for i in keep]
    texts, t2a = flatten_captions(kept)
    text_emb = embedder.embed_text(texts)
    sim = text_emb @ audio_emb.T
    report = M.retrieval_metrics(sim, t2a)
    baseline = M.random_retrieval_baseline(t2a, len(kept), n_runs=n_random_runs, seed=seed)
    result = CaptionRetrievalResult(dataset, report, baseline, len(kept), len(texts), failed)
    labels = [it.label for it in kept]
    if all(lab is not None for lab in labels):  # e.g. sfx-corpus: templated captions repeat within a label
        lab = np.asarray(labels, dtype=object)
        relevant = lab[t2a][:, None] == lab[None, :]
        result.label_t2a = M.multi_relevant_metrics(sim, relevant)
        result.label_t2a_baseline = M.random_relevance_baseline(relevant, n_runs=n_random_runs, seed=seed)
    return result


# --------------------------------------------------------------------------------------
# ESC-50 style: zero-shot classification + class-query retrieval


def readable_class_name(name: str) -> str:
    """``"crying_baby"`` -> ``"crying baby"`` (ESC-50 category names to prompt text)."""
    return " ".join(name.replace("_", " ").replace("-", " ").split())


def load_esc50(root: str | Path, folds: Sequence[int] | None = None) -> tuple[list[AudioCaptions], list[str]]:
    """Clips of an ESC-50 folder (``audio/`` + ``meta.csv``) and the class names by target index."""
    root = Path(root)
    meta = root / "meta.csv"
    if not meta.is_file():
        raise FileNotFoundError(f"{meta} not found: an ESC-50 folder has meta.csv and audio/")
    items: list[AudioCaptions] = []
    names: dict[int, str] = {}
    with open(meta, newline="") as f:
        for row in csv.DictReader(f):
            if folds is not None and int(row["fold"]) not in folds:
                continue
            target = int(row["target"])
            names[target] = row["category"]
            items.append(
                AudioCaptions(
                    audio_path=root / "audio" / row["filename"],
                    captions=[],
                    split=f"fold{row['fold']}",
                    label=row["category"],
                    meta={"target": target},
                )
            )
    if not items:
        raise ValueError(f"{meta} lists no clips (folds={folds})")
    n_cls = max(names) + 1
    classes = [names.get(i, f"class_{i}") for i in range(n_cls)]
    return items, classes


def check_template(template: str) -> None:
    """ValueError unless ``template`` holds exactly one ``{}`` for the class name (``"a {} and {}"``
    was an IndexError traceback; literal braces are written ``{{`` and ``}}``)."""
    import string

    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:  # a lone "{" or "}"
        raise ValueError(f"prompt template {template!r}: {e} (write '{{{{' and '}}}}' for literal braces)") from None
    if fields != [""]:
        found = "no '{}'" if not fields else (f"{len(fields)} field{'s' if len(fields) > 1 else ''} "
                                                    f"({', '.join('{' + f + '}' for f in fields)})")
        raise ValueError(f"prompt template {template!r} needs exactly one '{{}}' placeholder for the class name, "
                         f"e.g. 'the sound of a {{}}'; it has {found}")


def class_text_embeddings(embedder: ModelEmbedder, classes: Sequence[str], templates: Sequence[str]) -> np.ndarray:
    """One vector per class: the prompt embeddings averaged over templates, re-normalised."""
    if not templates:
        raise ValueError("need at least one prompt template, e.g. 'the sound of a {}'")
    for t in templates:
        check_template(t)
    readable = [readable_class_name(c) for c in classes]
    prompts = [t.format(c) for c in readable for t in templates]
    emb = embedder.embed_text(prompts).reshape(len(classes), len(templates), -1)
    return _l2(emb.mean(axis=1))


@dataclass
class ClassEvalResult:
    dataset: str
    zero_shot: M.ClassificationMetrics
    retrieval: M.ClassRetrievalMetrics
    zero_shot_baseline: M.ClassificationMetrics
    retrieval_baseline: M.ClassRetrievalMetrics
    templates: list[str]
    classes: list[str]
    failed: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "templates": self.templates,
            "classes": self.classes,
            "zero_shot": self._by_class_name(self.zero_shot.to_dict()),
            "zero_shot_random_baseline": self.zero_shot_baseline.to_dict(),
            "class_retrieval": self.retrieval.to_dict(),
            "class_retrieval_random_baseline": self.retrieval_baseline.to_dict(),
            "failed": [list(f) for f in self.failed],
        }

    def _by_class_name(self, d: dict) -> dict:
        """``per_class_accuracy`` keyed by class name (``"dog"``), not by target index."""
        per = d.get("per_class_accuracy", {})
        d["per_class_accuracy"] = {self.classes[int(k)] if int(k) < len(self.classes) else k: v for k, v in per.items()}
        return d

    def to_markdown(self) -> str:
        z, zb, r, rb = self.zero_shot, self.zero_shot_baseline, self.retrieval, self.retrieval_baseline
        lines = [
            f"### {self.dataset}: {z.n_items} clips, {z.n_classes} classes",
            "",
            "| | zero-shot acc | class-query mAP@10 | R@1 | R@10 |",
            "|---|---:|---:|---:|---:|",
            f"| model | {z.accuracy:.1f} | {r.map10:.1f} | {r.r1:.1f} | {r.r10:.1f} |",
            f"| random | {zb.accuracy:.1f} | {rb.map10:.1f} | {rb.r1:.1f} | {rb.r10:.1f} |",
            "",
            "Prompt templates (embeddings averaged): " + ", ".join(f"`{t}`" for t in self.templates),
        ]
        if self.failed:
            lines += ["", f"{len(self.failed)} clip(s) could not be decoded and were left out."]
        return "\n".join(lines) + "\n"


def evaluate_classes(
    embedder: ModelEmbedder,
    items: list[AudioCaptions],
    classes: Sequence[str],
    dataset: str,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    n_random_runs: int = 20,
    seed: int = 0,
) -> ClassEvalResult:
    """Zero-shot accuracy (argmax over class prompts) and class-query retrieval on labelled clips."""
    labels_all = np.array([int(it.meta["target"]) for it in items], dtype=np.int64)
    audio_emb, keep, failed = embedder.embed_audio(items)
    if len(keep) == 0:
        raise NothingEmbeddedError(f"{dataset}: none of the {len(items)} clips could be embedded; first error: "
                                   f"{failed[:1]}")
    labels = labels_all[keep]
    cls_emb = class_text_embeddings(embedder, classes, templates)
    sim = audio_emb @ cls_emb.T  # [N_items, N_classes]
    zs = M.zero_shot_accuracy(sim, labels)
    cr = M.class_retrieval_metrics(sim.T, labels)
    cr_b, zs_b = M.random_class_baseline(labels, len(classes), n_runs=n_random_runs, seed=seed)
    return ClassEvalResult(dataset, zs, cr, zs_b, cr_b, list(templates), list(classes), failed)
