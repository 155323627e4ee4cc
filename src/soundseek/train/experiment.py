"""Experiment runner: the papers' benchmark protocol for several models and seeds.

``soundseek experiment CONFIG.yaml --seeds 3`` trains every model of the config once per seed on
the training split, evaluates on the test split and writes, next to a copy of the config:

* ``results.md`` / ``results.json``: mean ± std over seeds, t2a and a2t R@1/5/10/50, medR, meanR,
  mAP@10 (papers' layout), with a random baseline row;
* ``durations.md``: t2a results of captions bucketed by the duration of their audio
  (< 30 s, 30-120 s, > 120 s by default; full gallery);
* ``scale.png``: the "influence of scale" curve (t2a R@10 vs. fraction of training data).

Every model trains with the one loop (:func:`soundseek.train.trainer.train_model`) and is scored
with the one similarity function (:func:`soundseek.train.trainer.similarity_matrix`: whole
clips), so its numbers are comparable with ``soundseek train`` and ``soundseek evaluate``.

Model kinds: ``dual_encoder``, ``moee``, ``ce``, ``mmt`` (trained with the papers' optimisers),
``two_stage`` (Primus et al.; ``base`` names the model kind, ``k`` stage-1 models) and
``ensemble`` (``members`` = names of earlier rows; their similarity matrices are averaged).
``init_from`` starts a model from a saved checkpoint (pre-train on one dataset, fine-tune here);
``{seed}`` in it is replaced by the seed index.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from ..eval import metrics as M
from ..models.ensemble import average_similarities
from ..models.multi_expert import ExpertSpec, MultiExpertConfig, MultiExpertModel, build_multiexpert
from .config import TrainConfig, build_dataclass
from .data import FeatureSet
from .distill import paper_config, two_stage
from .trainer import similarity_matrix, train_model
from .multiexpert_data import clip_durations, subset, synthetic_feature_set

MULTI_KINDS = ("moee", "ce", "mmt")
KINDS = ("dual_encoder", *MULTI_KINDS, "two_stage", "ensemble")


@dataclass
class ModelEntry:
    """One row of the results table."""

    name: str
    kind: str  # dual_encoder | moee | ce | mmt | two_stage | ensemble
    params: dict = field(default_factory=dict)  # model config (e.g. embed_dim; experts: {name: {max_len, ...}})
    fit: dict = field(default_factory=dict)  # TrainConfig overrides on top of the paper's settings (apply_overrides)
    base: str = "moee"  # two_stage: the model kind trained in both stages
    k: int = 1  # two_stage: number of stage-1 models (1 = self-distillation)
    stage2: dict = field(default_factory=lambda: {"distill_weight": 0.5, "loss": "nt_xent"})
    members: list = field(default_factory=list)  # ensemble: names of earlier rows
    init_from: str | None = None  # checkpoint directory ("{seed}" = seed index)


@dataclass
class DataSpec:
    dataset: str = "sfx_corpus"  # sfx_corpus | synthetic | path/to/captions.csv
    audio_root: str | None = None  # for a CSV: folder its `file` column is relative to
    audio_experts: list = field(default_factory=lambda: ["aisfx", "logmel"])
    text_expert: str = "minilm"
    train_split: str = "train"
    test_split: str = "test"
    synthetic: dict = field(default_factory=dict)  # synthetic_feature_set kwargs
    esc50: str | None = None  # ESC-50 folder (meta.csv + audio/): zero-shot + class retrieval per row
    esc50_template: str = "the sound of {}"


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    data: DataSpec = field(default_factory=DataSpec)
    models: list = field(default_factory=list)  # list[ModelEntry]
    seeds: int = 3
    fractions: list = field(default_factory=lambda: [0.25, 0.5, 1.0])
    scale_models: list = field(default_factory=list)  # rows for the scale curve (default: first row)
    duration_edges: list = field(default_factory=lambda: [30.0, 120.0])
    save_models: bool = False
    out_dir: str = "runs/experiments"
    num_threads: int = 1

    @classmethod
    def from_dict(cls, d: dict) -> "ExperimentConfig":
        d = dict(d or {})
        models = d.pop("models", [])
        cfg = build_dataclass(cls, d, "experiment")
        cfg.models = [build_dataclass(ModelEntry, m, f"experiment.models[{i}]") for i, m in enumerate(models)]
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> "ExperimentConfig":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"experiment config {path} does not exist")
        return cls.from_dict(yaml.safe_load(path.read_text()))

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(asdict(self), sort_keys=False))

    def validate(self) -> None:
        if not self.models:
            raise ValueError("experiment config lists no models")
        seen = set()
        for m in self.models:
            if m.kind not in KINDS:
                raise ValueError(f"model {m.name!r}: unknown kind {m.kind!r}; use one of {KINDS}")
            if m.name in seen:
                raise ValueError(f"two models are named {m.name!r}; row names must be unique")
            if m.kind == "ensemble":
                missing = [x for x in m.members if x not in seen]
                if not m.members or missing:
                    raise ValueError(f"ensemble {m.name!r} needs members listed above it; unknown: {missing}")
            else:  # wrong fit/stage2 keys fail here, not after hours of training
                kind = m.base if m.kind == "two_stage" else m.kind
                paper_config(kind, **m.fit)
                if m.kind == "two_stage":
                    paper_config(kind, **{**m.fit, **m.stage2})
            seen.add(m.name)
        for name in self.scale_models:
            if name not in seen:
                raise ValueError(f"scale_models names unknown row {name!r}")
        if any(not 0 < f <= 1 for f in self.fractions):
            raise ValueError(f"fractions must be in (0, 1], got {self.fractions}")


# ------------------------------------------------------------------------------------- data


def load_features(spec: DataSpec, progress: bool = True) -> tuple[FeatureSet, FeatureSet]:
    """(train, test) feature sets for the spec; audio features and text tokens are cached."""
    if spec.dataset == "synthetic":
        fs = synthetic_feature_set(**spec.synthetic)
        n_test = max(8, fs.n_clips // 4)
        return subset(fs, np.arange(fs.n_clips - n_test)), subset(fs, np.arange(fs.n_clips - n_test, fs.n_clips))
    from .data import build_feature_set

    items = _load_items(spec)
    out = []
    for split in (spec.train_split, spec.test_split):
        chosen = [it for it in items if it.split == split]
        if not chosen:
            splits = sorted({it.split for it in items})
            raise ValueError(f"dataset {spec.dataset!r} has no {split!r} split; it has {splits}")
        fs, failed = build_feature_set(
            chosen, list(spec.audio_experts), [spec.text_expert], with_tokens=True, progress=progress
        )
        if failed:
            print(f"[experiment] {len(failed)} {split} clip(s) could not be decoded and are left out")
        out.append(fs)
    return out[0], out[1]


@dataclass
class Esc50Set:
    """ESC-50 clips with one class-prompt caption each; ``class_rows[c]`` = a caption of class c."""

    fs: FeatureSet
    clip_class: np.ndarray
    class_rows: np.ndarray
    classes: list


def load_esc50_features(spec: DataSpec, progress: bool = True) -> Esc50Set:
    """Features of ESC-50 (evaluation only) and one prompt per class, for zero-shot scoring."""
    from ..eval.protocols import load_esc50, readable_class_name
    from .data import build_feature_set

    items, classes = load_esc50(spec.esc50)
    for it in items:
        it.captions = [spec.esc50_template.format(readable_class_name(it.label))]
    fs, _ = build_feature_set(items, list(spec.audio_experts), [spec.text_expert], with_tokens=True,
                              progress=progress)
    clip_class = np.array([classes.index(lab) for lab in fs.labels])
    present = sorted(set(clip_class.tolist()))
    first_caption = {}
    for j, c in enumerate(fs.caption_clip):
        first_caption.setdefault(int(clip_class[c]), j)
    remap = {c: i for i, c in enumerate(present)}
    return Esc50Set(fs, np.array([remap[c] for c in clip_class]), np.array([first_caption[c] for c in present]),
                    [classes[c] for c in present])


def esc50_scores(sim: torch.Tensor, esc: Esc50Set) -> dict:
    """Zero-shot accuracy and class-query retrieval from a caption x clip similarity matrix."""
    s = M.to_numpy(sim)[esc.class_rows]  # (classes, clips)
    cr = M.class_retrieval_metrics(s, esc.clip_class)
    return {"zero_shot": M.zero_shot_accuracy(s.T, esc.clip_class).accuracy, "map10": cr.map10,
            "r1": cr.r1, "r10": cr.r10}


def _load_items(spec: DataSpec) -> list:
    if spec.dataset == "sfx_corpus":
        from ..data.sfx_corpus import corpus_root, load_sfx_corpus

        root = corpus_root(spec.audio_root)
        return load_sfx_corpus(root, drop_missing=True)
    return _load_csv(Path(spec.dataset), spec.audio_root)


def _load_csv(csv: Path, audio_root) -> list:
    if not csv.is_file():
        raise FileNotFoundError(f"captions CSV {csv} not found")
    from ..data import load_caption_csv

    return load_caption_csv(csv, audio_root=audio_root)


# ------------------------------------------------------------------------------------- models


def fit_config_for(
    entry: ModelEntry, kind: str | None = None, overrides: dict | None = None, seed: int = 0, num_threads: int = 1
) -> TrainConfig:
    """The row's :class:`TrainConfig`: the paper's settings for its kind, then ``fit``, then ``overrides``."""
    cfg = paper_config(kind or entry.kind, **{**entry.fit, **(overrides or {})})
    cfg.seed, cfg.num_threads = seed, num_threads
    return cfg


def build_model(kind: str, params: dict, fs: FeatureSet, spec: DataSpec) -> nn.Module:
    """A fresh model of ``kind`` sized from the feature set's expert dimensions."""
    params = dict(params)
    text_dim = int(fs.text[spec.text_expert].shape[1])
    if kind == "dual_encoder":
        from ..models.dual_encoder import DualEncoder

        audio = params.pop("audio_expert", spec.audio_experts[0])
        return DualEncoder(
            audio_expert=audio, text_expert=spec.text_expert,
            audio_dim=int(fs.audio[audio][0].shape[1]), text_dim=text_dim, **params,
        )  # fmt: skip
    if kind in MULTI_KINDS:
        per_expert = params.pop("experts", {})
        specs = [
            ExpertSpec(name=e, dim=int(fs.audio[e][0].shape[1]), **per_expert.get(e, {})) for e in spec.audio_experts
        ]
        cfg = MultiExpertConfig(
            kind=kind, audio_experts=specs, text_expert=spec.text_expert, text_dim=text_dim, **params
        )
        return build_multiexpert(cfg)
    raise ValueError(f"cannot build a model of kind {kind!r}")


def load_checkpoint(path: str | Path) -> nn.Module:
    """A saved model (any kind ``soundseek.models.load_model`` knows, or a multi-expert model)."""
    path = Path(path)
    cfg = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
    if cfg.get("model_type") in MULTI_KINDS:
        return MultiExpertModel.from_pretrained(path)
    from ..models import load_model

    return load_model(path)


# ------------------------------------------------------------------------------------- runner


@dataclass
class RowResult:
    name: str
    kind: str
    reports: list  # one RetrievalReport per seed
    durations: list  # per seed: {bucket: t2a metrics dict}
    train_seconds: list
    esc50: list = field(default_factory=list)  # per seed: esc50_scores() dict


def _bucket_names(edges: list[float]) -> list[str]:
    e = [float(x) for x in edges]
    names = [f"< {e[0]:g} s"] + [f"{a:g}-{b:g} s" for a, b in zip(e[:-1], e[1:])] + [f"> {e[-1]:g} s"]
    return names


def duration_buckets(sim: torch.Tensor, caption_clip: np.ndarray, durations: np.ndarray, edges: list[float]) -> dict:
    """t2a metrics of captions grouped by their audio's duration (gallery: all test clips)."""
    bucket_of_clip = np.digitize(durations, np.asarray(edges, dtype=float))
    out = {}
    for b, name in enumerate(_bucket_names(edges)):
        caps = np.flatnonzero(bucket_of_clip[caption_clip] == b)
        if len(caps) == 0:
            out[name] = None
            continue
        out[name] = M.t2a_metrics(sim[torch.as_tensor(caps)], caption_clip[caps]).to_dict()
    return out


def _train_one(entry: ModelEntry, fs: FeatureSet, spec: DataSpec, seed: int, trained: dict, progress: bool,
               num_threads: int = 1):  # fmt: skip
    """-> (model or None, test-time scorer).  ``trained`` maps earlier row names to this seed's models."""
    if entry.kind == "ensemble":
        return None, [trained[m] for m in entry.members]
    if entry.kind == "two_stage":
        cfg1 = fit_config_for(entry, entry.base, num_threads=num_threads)
        cfg2 = fit_config_for(entry, entry.base, entry.stage2, num_threads=num_threads)
        res = two_stage(
            lambda: build_model(entry.base, entry.params, fs, spec), fs, cfg1, cfg2, k=entry.k, seed=seed,
            progress=progress,
        )  # fmt: skip
        return res.stage2[0], [res.stage2[0]]
    torch.manual_seed(seed)
    if entry.init_from:
        model = load_checkpoint(entry.init_from.replace("{seed}", str(seed)))
    else:
        model = build_model(entry.kind, entry.params, fs, spec)
    train_model(fit_config_for(entry, seed=seed, num_threads=num_threads), fs, model=model, progress=progress)
    return model, [model]


def model_scores(models: list[nn.Module], fs: FeatureSet) -> torch.Tensor:
    """Test similarity matrix (:func:`similarity_matrix`); several models (an ensemble) are averaged.
    Public: the tests check it equals the validation score a checkpoint was selected on."""
    return average_similarities([similarity_matrix(m, fs) for m in models])


def check_inputs(cfg: ExperimentConfig) -> None:
    """FileNotFoundError / ValueError for what would fail only after the features are computed
    (minutes): the ESC-50 folder and its prompt template."""
    from ..eval.protocols import check_template

    if cfg.data.esc50:
        meta = Path(cfg.data.esc50).expanduser() / "meta.csv"
        if not meta.is_file():
            raise FileNotFoundError(f"data.esc50: {meta} not found (a relative path is taken from the current "
                                    f"folder, {Path.cwd()}); give the ESC-50 folder (meta.csv + audio/) or drop "
                                    "data.esc50")
        check_template(cfg.data.esc50_template)


def run_experiment(cfg: ExperimentConfig, out_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Train and evaluate every row for every seed; write the reports; return the JSON summary."""
    check_inputs(cfg)
    torch.set_num_threads(cfg.num_threads)
    out = Path(out_dir or Path(cfg.out_dir) / cfg.name)
    out.mkdir(parents=True, exist_ok=True)
    cfg.to_yaml(out / "config.yaml")
    t0 = time.time()
    train_fs, test_fs = load_features(cfg.data, progress=progress)
    durations = clip_durations(test_fs)
    edges = [float(e) for e in cfg.duration_edges]
    esc = load_esc50_features(cfg.data, progress=progress) if cfg.data.esc50 else None
    rows = {e.name: RowResult(e.name, e.kind, [], [], []) for e in cfg.models}
    for seed in range(cfg.seeds):
        trained: dict[str, nn.Module] = {}
        test_sims: dict[str, torch.Tensor] = {}
        esc_sims: dict[str, torch.Tensor] = {}
        for entry in cfg.models:
            t = time.time()
            if entry.kind == "ensemble":  # members were scored already this seed
                model, sim = None, average_similarities([test_sims[m] for m in entry.members])
                if esc is not None:
                    esc_sims[entry.name] = average_similarities([esc_sims[m] for m in entry.members])
            else:
                model, scorers = _train_one(entry, train_fs, cfg.data, seed, trained, progress=False,
                                            num_threads=cfg.num_threads)
                trained[entry.name] = model
                sim = model_scores(scorers, test_fs)
                if esc is not None:
                    esc_sims[entry.name] = model_scores(scorers, esc.fs)
            if esc is not None:
                rows[entry.name].esc50.append(esc50_scores(esc_sims[entry.name], esc))
            test_sims[entry.name] = sim
            rows[entry.name].reports.append(M.retrieval_metrics(sim, test_fs.caption_clip))
            rows[entry.name].durations.append(duration_buckets(sim, test_fs.caption_clip, durations, edges))
            rows[entry.name].train_seconds.append(time.time() - t)
            if cfg.save_models and model is not None and hasattr(model, "save_pretrained"):
                model.save_pretrained(out / "models" / entry.name / f"seed{seed}")
            if progress:
                r = rows[entry.name].reports[-1].t2a
                print(f"[experiment] seed {seed} {entry.name}: t2a R@1 {r.r1:.1f} R@10 {r.r10:.1f} "
                      f"({time.time() - t:.1f} s)")  # fmt: skip
    scale = _scale_curve(cfg, train_fs, test_fs, rows, progress)
    summary = _write_reports(cfg, out, rows, test_fs, durations, edges, scale, time.time() - t0)
    if esc is not None:
        summary["esc50"] = _write_esc50(out, rows, esc)
        (out / "results.json").write_text(json.dumps(summary, indent=2))
    return summary


def _write_esc50(out: Path, rows: dict, esc: Esc50Set) -> dict:
    """esc50.md: zero-shot accuracy and class-query retrieval per row, mean ± std over seeds."""
    cr, zs = M.random_class_baseline(esc.clip_class, len(esc.classes))
    keys = ("zero_shot", "map10", "r1", "r10")
    lines = [f"ESC-50 ({esc.fs.n_clips} clips, {len(esc.classes)} classes, evaluation only): zero-shot "
             "accuracy and class-query retrieval (percent), mean ± population std over seeds.", "",
             "| | zero-shot acc | class mAP@10 | R@1 | R@10 |", "|---|---:|---:|---:|---:|"]
    result = {}
    for name, r in rows.items():
        if not r.esc50:
            continue
        vals = {k: [d[k] for d in r.esc50] for k in keys}
        result[name] = {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "per_seed": v} for k, v in vals.items()}
        lines.append(f"| {name} | " + " | ".join(f"{np.mean(vals[k]):.1f} ± {np.std(vals[k]):.1f}" for k in keys) + " |")
    lines.append(f"| random | {zs.accuracy:.1f} | {cr.map10:.1f} | {cr.r1:.1f} | {cr.r10:.1f} |")
    (out / "esc50.md").write_text("\n".join(lines) + "\n")
    result["random"] = {"zero_shot": zs.accuracy, "map10": cr.map10, "r1": cr.r1, "r10": cr.r10}
    return result


def _scale_curve(cfg, train_fs, test_fs, rows, progress) -> dict:
    names = cfg.scale_models or [cfg.models[0].name]
    entries = {e.name: e for e in cfg.models}
    curve = {}
    for name in names:
        entry = entries[name]
        if entry.kind == "ensemble":
            continue
        pts = {}
        for frac in sorted(set(float(f) for f in cfg.fractions)):
            if frac >= 1.0:
                pts[frac] = [r.t2a.r10 for r in rows[name].reports]
                continue
            vals = []
            for seed in range(cfg.seeds):
                rng = np.random.default_rng(10_000 + seed)
                n = max(2, int(round(frac * train_fs.n_clips)))
                part = subset(train_fs, np.sort(rng.permutation(train_fs.n_clips)[:n]))
                model, scorers = _train_one(entry, part, cfg.data, seed, {}, progress=False,
                                            num_threads=cfg.num_threads)
                vals.append(M.retrieval_metrics(model_scores(scorers, test_fs), test_fs.caption_clip).t2a.r10)
            pts[frac] = vals
            if progress:
                print(f"[experiment] scale {name} {frac:.2f}: t2a R@10 {np.mean(vals):.1f}")
        curve[name] = pts
    return curve


def _write_reports(cfg, out: Path, rows: dict, test_fs, durations, edges, scale, seconds) -> dict:
    baseline = M.random_retrieval_baseline(test_fs.caption_clip, test_fs.n_clips)
    aggs = {name: M.aggregate_reports(r.reports) for name, r in rows.items()}
    table = M.markdown_table([*aggs.items(), ("random", baseline)])
    header = (
        f"# {cfg.name}\n\n{test_fs.n_captions} test captions, {test_fs.n_clips} test clips; "
        f"mean ± population std over {cfg.seeds} seed(s); {seconds:.0f} s in all.\n\n"
    )
    (out / "results.md").write_text(header + table)
    # duration buckets (t2a, mean over seeds)
    bnames = _bucket_names(edges)
    counts = {b: None for b in bnames}
    lines = ["| | " + " | ".join(f"{b} R@10 / mAP@10" for b in bnames) + " |", "|---|" + "---:|" * len(bnames)]
    for name, r in rows.items():
        cells = []
        for b in bnames:
            vals = [d[b] for d in r.durations if d[b] is not None]
            if not vals:
                cells.append("-")
                continue
            counts[b] = vals[0]["n_queries"]
            cells.append(f"{np.mean([v['r10'] for v in vals]):.1f} / {np.mean([v['map10'] for v in vals]):.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    count_line = ", ".join(f"{b}: {counts[b] or 0} captions" for b in bnames)
    (out / "durations.md").write_text(f"t2a by audio duration ({count_line}); gallery = all test clips.\n\n"
                                      + "\n".join(lines) + "\n")  # fmt: skip
    if scale:
        _plot_scale(scale, out / "scale.png")
    summary = {
        "name": cfg.name,
        "seeds": cfg.seeds,
        "n_test_captions": test_fs.n_captions,
        "n_test_clips": test_fs.n_clips,
        "seconds": seconds,
        "rows": {
            name: {
                "kind": r.kind,
                "aggregate": aggs[name].to_dict(),
                "per_seed": [rep.to_dict() for rep in r.reports],
                "durations": r.durations,
                "train_seconds": r.train_seconds,
            }
            for name, r in rows.items()
        },
        "random": baseline.to_dict(),
        "scale": {name: {str(k): v for k, v in pts.items()} for name, pts in scale.items()},
        "duration_buckets": bnames,
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    return summary


def _plot_scale(scale: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, pts in scale.items():
        xs = sorted(pts)
        ax.errorbar([100 * x for x in xs], [np.mean(pts[x]) for x in xs], yerr=[np.std(pts[x]) for x in xs],
                    marker="o", capsize=3, label=name)  # fmt: skip
    ax.set_xlabel("training data used (%)")
    ax.set_ylabel("t2a R@10 (%)")
    ax.set_title("Influence of training-set scale")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def builtin_config(name: str) -> Path:
    """Path of a config shipped in ``soundseek/train/experiments/``."""
    p = Path(__file__).parent / "experiments" / f"{name}.yaml"
    if not p.is_file():
        known = sorted(x.stem for x in p.parent.glob("*.yaml"))
        raise FileNotFoundError(f"no built-in experiment {name!r}; known: {known}")
    return p


