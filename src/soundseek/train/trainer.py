"""A small, generic trainer for retrieval models over cached expert features.

It only relies on the model contract ``similarity(text_batch, audio_batch) -> S[N_text, N_audio]``
(plus ``audio_experts``/``text_experts`` and ``save_pretrained``), so the same loop trains the
DualEncoder heads and the multi-expert models.  Checkpoint selection and early stopping use the
validation geometric mean of t2a R@1/5/10 (:mod:`soundseek.eval.metrics`).
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..eval.metrics import t2a_metrics
from ..losses import get_loss
from .augment import augment_audio, text_noise
from .config import TrainConfig
from .data import FeatureSet

SELECTION_METRIC = "val_geo_mean"  # geometric mean of validation t2a R@1, R@5, R@10 (percent)


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict]
    best_epoch: int
    best_score: float
    out_dir: Path | None = None
    model_dir: Path | None = None
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        best = next((h for h in self.history if h["epoch"] == self.best_epoch), {})
        return {"best_epoch": self.best_epoch, SELECTION_METRIC: self.best_score, "best": best, **self.extra}


# ---------------------------------------------------------------------------------------------
# model construction


def build_model(cfg: TrainConfig) -> nn.Module:
    """Instantiate ``cfg.model.type`` (a key of ``soundseek.models.MODEL_TYPES``) from its params.

    A class may offer ``from_config_dict(params)``; otherwise it is called as ``cls(**params)``.
    The global RNG is seeded with ``cfg.seed`` first, so the initial weights are reproducible.
    """
    from ..models import MODEL_TYPES

    seed_everything(cfg.seed)
    mtype = cfg.model.type
    if mtype not in MODEL_TYPES:
        raise ValueError(f"unknown model type {mtype!r}; known: {sorted(MODEL_TYPES)}")
    module, _, name = MODEL_TYPES[mtype].partition(":")
    cls = getattr(importlib.import_module(module), name)
    params = dict(cfg.model.params)
    if hasattr(cls, "from_config_dict"):
        return cls.from_config_dict(params)
    return cls(**params)


def required_experts(model: nn.Module) -> tuple[list[str], list[str]]:
    """(audio experts, text experts) whose features the model consumes."""
    audio = getattr(model, "audio_experts", None) or [model.config.audio_expert]
    text = getattr(model, "text_experts", None) or [model.config.text_expert]
    return list(audio), list(text)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# batches


def epoch_batches(fs: FeatureSet, cfg: TrainConfig, gen: torch.Generator):
    """Yield (clip indices, caption indices) for one epoch, in a seeded random order.

    ``sample``: one random caption per clip (B captions for B clips); ``all``: every caption of
    the batch's clips (their multi-positive mask keeps same-clip captions from being negatives).
    """
    order = torch.randperm(fs.n_clips, generator=gen).numpy()
    bs = cfg.batch_size
    for lo in range(0, len(order), bs):
        clips = order[lo : lo + bs]
        if len(clips) < 2:  # a single clip has no negatives
            continue
        if cfg.data.captions_per_clip == "all":
            caps = np.concatenate([fs.clip_captions[c] for c in clips])
        elif cfg.data.captions_per_clip == "sample":
            caps = np.array(
                [fs.clip_captions[c][int(torch.randint(len(fs.clip_captions[c]), (), generator=gen))] for c in clips]
            )
        else:
            raise ValueError(f"data.captions_per_clip must be 'sample' or 'all', not {cfg.data.captions_per_clip!r}")
        yield clips, caps


def batch_positive_mask(fs: FeatureSet, caps: np.ndarray, clips: np.ndarray, label_positives: bool) -> torch.Tensor:
    """P[caption, clip]: the caption's own clip, and (optionally) clips with the same class label."""
    own = fs.caption_clip[caps][:, None] == clips[None, :]
    if label_positives:
        labels = np.array([fs.labels[i] or f"\0{i}" for i in range(fs.n_clips)], dtype=object)
        same = labels[fs.caption_clip[caps]][:, None] == labels[clips][None, :]
        own = own | same
    return torch.from_numpy(own)


# ---------------------------------------------------------------------------------------------
# evaluation


@torch.no_grad()
def similarity_matrix(model: nn.Module, fs: FeatureSet, clip_chunk: int = 256, text_chunk: int = 1024) -> torch.Tensor:
    """Full S[N_captions, N_clips] of a feature set, computed in blocks (whole clips, no crop)."""
    was_training = model.training
    model.eval()
    rows = []
    all_clips = np.arange(fs.n_clips)
    audio_batches = [fs.audio_batch(all_clips[lo : lo + clip_chunk]) for lo in range(0, fs.n_clips, clip_chunk)]
    for tlo in range(0, fs.n_captions, text_chunk):
        tb = fs.text_batch(np.arange(tlo, min(tlo + text_chunk, fs.n_captions)))
        rows.append(torch.cat([model.similarity(tb, ab) for ab in audio_batches], dim=1))
    model.train(was_training)
    return torch.cat(rows, dim=0)


def evaluate(model: nn.Module, fs: FeatureSet) -> dict:
    """t2a retrieval metrics (percent) on a feature set; ``val_geo_mean`` selects checkpoints."""
    m = t2a_metrics(similarity_matrix(model, fs), fs.caption_clip)
    return {
        "r1": m.r1,
        "r5": m.r5,
        "r10": m.r10,
        "median_rank": m.median_rank,
        "map10": m.map10,
        "geo_mean": m.geometric_mean,
        "n_captions": m.n_queries,
        "n_clips": m.n_gallery,
    }


# ---------------------------------------------------------------------------------------------
# schedule


def lr_lambda(cfg: TrainConfig, steps_per_epoch: int):
    """Linear warm-up, then cosine to zero / step decay / constant, as a function of the step."""
    o = cfg.optim
    warm = max(0, int(round(o.warmup_epochs * steps_per_epoch)))
    total = max(1, cfg.epochs * steps_per_epoch)
    if o.schedule not in ("cosine", "step", "constant"):
        raise ValueError(f"optim.schedule must be 'cosine', 'step' or 'constant', not {o.schedule!r}")

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if o.schedule == "cosine":
            progress = (step - warm) / max(1, total - warm)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        if o.schedule == "step":
            return o.step_gamma ** ((step // steps_per_epoch) // max(1, o.step_epochs))
        return 1.0

    return f


# ---------------------------------------------------------------------------------------------
# the loop


def train_model(
    cfg: TrainConfig,
    train_set: FeatureSet,
    val_set: FeatureSet | None = None,
    model: nn.Module | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` (default: built from ``cfg.model``) and return it with the best validation weights.

    Without a validation set the last epoch is kept and the score is the training loss' negative.
    """
    torch.set_num_threads(max(1, cfg.num_threads))
    if model is None:
        model = build_model(cfg)
    seed_everything(cfg.seed)
    loss_kwargs = {"margin": cfg.loss.margin} if cfg.loss.name == "max_margin" else {
        "temperature": cfg.loss.temperature,
        "learnable": cfg.loss.learnable_temperature,
    }
    loss_name = {"ntxent": "nt_xent"}.get(cfg.loss.name, cfg.loss.name)
    criterion = get_loss(loss_name, **loss_kwargs)
    params = [p for p in list(model.parameters()) + list(criterion.parameters()) if p.requires_grad]
    optim = torch.optim.Adam(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = max(1, sum(1 for _ in epoch_batches(train_set, cfg, torch.Generator().manual_seed(0))))
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_lambda(cfg, steps_per_epoch))

    history: list[dict] = []
    best_score, best_epoch, best_state, stale = -math.inf, 0, None, 0
    bar = _progress(progress)
    task = bar.add_task("training", total=cfg.epochs) if bar else None
    try:
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            losses = []
            for clips, caps in epoch_batches(train_set, cfg, gen):
                ab = train_set.audio_batch(clips, cfg.data.max_frames, gen)
                for name in list(ab.frames):
                    ab.frames[name], ab.mask[name] = augment_audio(ab.frames[name], ab.mask[name], cfg.augment, gen)
                tb = train_set.text_batch(caps)
                if cfg.augment.text_noise > 0:
                    tb.sentence = {k: text_noise(v, cfg.augment.text_noise, gen) for k, v in tb.sentence.items()}
                pos = batch_positive_mask(train_set, caps, clips, cfg.data.label_positives)
                loss = criterion(model.similarity(tb, ab), pos)
                optim.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.optim.grad_clip:
                    nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
                optim.step()
                sched.step()
                losses.append(float(loss.detach()))
            row = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan"),
                   "lr": optim.param_groups[0]["lr"]}  # fmt: skip
            if val_set is not None:
                val = evaluate(model, val_set)
                row.update({f"val_{k}": v for k, v in val.items() if not k.startswith("n_")})
                score = val["geo_mean"]
            else:
                score = -row["loss"]
            row["seconds"] = round(time.perf_counter() - t0, 3)
            history.append(row)
            if score > best_score + 1e-9:
                best_score, best_epoch, stale = score, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
            if bar:
                val_txt = f" val {score:.1f}" if val_set is not None else ""
                bar.update(task, advance=1, description=f"epoch {epoch} loss {row['loss']:.3f}{val_txt}")
            if cfg.patience is not None and val_set is not None and stale >= cfg.patience:
                break
    finally:
        if bar:
            bar.stop()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model, history, best_epoch, float(best_score))


def _progress(enabled: bool):
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    bar.start()
    return bar


# ---------------------------------------------------------------------------------------------
# outputs


def save_run(result: TrainResult, cfg: TrainConfig, out_dir: str | Path, extra_metrics: dict | None = None) -> Path:
    """Write ``model/`` (weights + config + metrics), ``train_config.yaml``, ``metrics.json``, ``curve.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = {**result.summary(), **(extra_metrics or {}), "history": result.history}
    model_dir = out / "model"
    summary = {k: v for k, v in metrics.items() if k != "history"}
    save = result.model.save_pretrained
    if "metrics" in inspect.signature(save).parameters:
        save(model_dir, metrics=summary)
    else:  # models whose save_pretrained takes no metrics
        save(model_dir)
        (model_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    cfg.to_yaml(out / "train_config.yaml")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_curve(result.history, out / "curve.png")
    result.out_dir, result.model_dir = out, model_dir
    return model_dir


def plot_curve(history: list[dict], path: str | Path) -> None:
    """Training loss and validation geometric-mean recall per epoch, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(epochs, [h["loss"] for h in history], color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss", color="tab:blue")
    if history and "val_geo_mean" in history[0]:
        ax2 = ax.twinx()
        ax2.plot(epochs, [h["val_geo_mean"] for h in history], color="tab:orange", label="val geo-mean R@1/5/10")
        ax2.set_ylabel("val geo-mean R@1/5/10 (%)", color="tab:orange")
    ax.set_title("training curve")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
