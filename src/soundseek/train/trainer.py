"""The one training loop and the one similarity function of soundseek.

Everything that trains or scores a retrieval model goes through this module: ``soundseek train``
(:mod:`.pipeline`), the default recipe and its variants (:mod:`.recipes`), the experiment runner
(:mod:`.experiment`) and two-stage distillation (:mod:`.distill`).

* :func:`train_model` trains any model with ``similarity(text_batch, audio_batch) -> S[N_text,
  N_audio]`` (DualEncoder, MoEE/CE/MMT, your own) on a :class:`~.data.FeatureSet`: max-margin or
  NT-Xent, optionally mixed with distillation towards soft targets; Adam/AdamW/RAdam+Lookahead
  with warm-up and cosine/step/exponential decay; feature augmentation; early stopping on the
  validation geometric mean of t2a R@1/5/10; the best weights are restored; seeded.
* :func:`similarity_matrix` scores every caption of a feature set against every clip.  It is
  what validation, evaluation, distillation targets and the experiment tables all use, with one
  clip treatment: **whole clips** (every frame of every expert, padded to the longest clip of a
  block and masked) and whole captions, unless ``max_frames`` caps the frames (evenly spaced).
"""

from __future__ import annotations

import copy
import dataclasses
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

from .. import losses
from ..eval.metrics import t2a_metrics
from .augment import augment_audio, text_noise
from .config import OptimConfig, TrainConfig
from .data import FeatureSet

# The clip treatment of similarity_matrix: None = whole clips.  An int caps every expert to that
# many evenly spaced frames (a memory knob for very long clips); keep the default everywhere.
EVAL_MAX_FRAMES: int | None = None

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
    """Instantiate ``cfg.model.type`` (a key of :data:`soundseek.models.registry.MODEL_TYPES`).

    A class may offer ``from_config_dict(params)``; otherwise it is called as ``cls(**params)``.
    The global RNG is seeded with ``cfg.seed`` first, so the initial weights are reproducible.
    """
    from ..models.registry import MODEL_TYPES, model_class

    seed_everything(cfg.seed)
    mtype = cfg.model.type
    if mtype not in MODEL_TYPES:
        raise ValueError(f"unknown model type {mtype!r}; known: {sorted(MODEL_TYPES)}")
    cls = model_class(mtype)
    params = dict(cfg.model.params)
    if hasattr(cls, "from_config_dict"):
        return cls.from_config_dict(params)
    return cls(**params)


def required_experts(model: nn.Module) -> tuple[list[str], list[str]]:
    """(audio experts, text experts) whose features the model consumes."""
    audio = getattr(model, "audio_experts", None) or [model.config.audio_expert]
    text = getattr(model, "text_experts", None) or [model.config.text_expert]
    return list(audio), list(text)


def needs_tokens(model: nn.Module) -> bool:
    """Whether a model reads token features (sentence-vector models do not; ensembles: any member)."""
    members = getattr(model, "members", None)
    if members is not None:
        return any(needs_tokens(m) for m in members)
    return bool(getattr(model, "needs_tokens", not hasattr(model, "encode_text")))


def _audio_experts(model: nn.Module) -> list[str] | None:
    """The audio experts a model declares, or None (= every expert of the feature set)."""
    try:
        return required_experts(model)[0]
    except AttributeError:
        return None


def train_crop_lengths(model: nn.Module, max_frames: int | None) -> int | dict[str, int | None] | None:
    """Training crop length per audio expert: ``data.max_frames``, and for multi-expert models at
    most each expert's ``ExpertSpec.max_len`` (the length its inputs were designed for)."""
    experts = _audio_experts(model)
    if experts is None:
        return max_frames
    lengths = {e: max_frames for e in experts}
    specs = getattr(getattr(model, "config", None), "audio_experts", None)
    for spec in specs if isinstance(specs, list) else ():
        cap = getattr(spec, "max_len", None)
        if cap is not None and spec.name in lengths:
            lengths[spec.name] = cap if max_frames is None else min(cap, max_frames)
    return lengths


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
def similarity_matrix(
    model: nn.Module,
    fs: FeatureSet,
    max_frames: int | None = EVAL_MAX_FRAMES,
    clip_chunk: int = 256,
    text_chunk: int = 1024,
) -> torch.Tensor:
    """``S[n_captions, n_clips]`` of every caption of ``fs`` against every clip, in eval mode.

    The one scoring function of soundseek (validation, evaluation, distillation targets,
    experiment tables).  Clips are whole (all frames of each expert the model reads, padded to
    the longest clip of a block of ``clip_chunk`` and masked; padding never changes a score),
    captions whole (token sequences only for models that read them).  ``max_frames`` caps
    every expert to that many evenly spaced frames per clip.  Multi-expert models embed each
    side once and mix (same numbers as their ``similarity``, fewer passes).
    """
    from ..models.multi_expert import MultiExpertModel, mixture_similarity

    was_training = model.training
    model.eval()
    audio_experts = _audio_experts(model)
    tokens = needs_tokens(model)
    clips = np.arange(fs.n_clips)
    audio = [fs.audio_batch(clips[lo : lo + clip_chunk], max_frames, None, audio_experts)
             for lo in range(0, fs.n_clips, clip_chunk)]  # fmt: skip
    texts = (np.arange(lo, min(lo + text_chunk, fs.n_captions)) for lo in range(0, fs.n_captions, text_chunk))
    rows = []
    if isinstance(model, MultiExpertModel):
        a = [model.embed_audio(ab) for ab in audio]
        a_emb, a_avail = torch.cat([x[0] for x in a]), torch.cat([x[1] for x in a])
        for caps in texts:
            rows.append(mixture_similarity(*model.embed_text(fs.text_batch(caps, tokens)), a_emb, a_avail))
    else:
        for caps in texts:
            tb = fs.text_batch(caps, tokens)
            rows.append(torch.cat([model.similarity(tb, ab) for ab in audio], dim=1))
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
    """Linear warm-up, then cosine to zero / step decay / exponential decay per epoch / constant,
    as a factor of the base lr for a (0-based) optimiser step."""
    o = cfg.optim
    warm = max(0, int(round(o.warmup_epochs * steps_per_epoch)))
    total = max(1, cfg.epochs * steps_per_epoch)
    if o.schedule not in ("cosine", "step", "exp", "constant"):
        raise ValueError(f"optim.schedule must be 'cosine', 'step', 'exp' or 'constant', not {o.schedule!r}")

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if o.schedule == "cosine":
            progress = (step - warm) / max(1, total - warm)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        if o.schedule == "step":
            return o.step_gamma ** ((step // steps_per_epoch) // max(1, o.step_epochs))
        if o.schedule == "exp":
            return o.step_gamma ** (step // steps_per_epoch)
        return 1.0

    return f


class Lookahead:
    """Lookahead (Zhang et al. 2019): every ``k`` inner steps, move slow weights ``alpha`` of the
    way towards the fast ones and restart the fast weights from there.  Wraps any optimiser;
    ``param_groups`` is the inner optimiser's, so the lr schedule applies as usual."""

    def __init__(self, optimizer: torch.optim.Optimizer, k: int = 5, alpha: float = 0.5):
        if k < 1 or not 0.0 < alpha <= 1.0:
            raise ValueError(f"Lookahead needs k >= 1 and 0 < alpha <= 1, got k={k}, alpha={alpha}")
        self.optimizer = optimizer
        self.k, self.alpha = k, alpha
        self.steps = 0
        self.slow = [[p.detach().clone() for p in g["params"]] for g in optimizer.param_groups]

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.optimizer.step(closure)
        self.steps += 1
        if self.steps % self.k == 0:
            for group, slow in zip(self.optimizer.param_groups, self.slow):
                for p, s in zip(group["params"], slow):
                    s.add_(p - s, alpha=self.alpha)
                    p.copy_(s)
        return loss

    def state_dict(self) -> dict:
        return {"inner": self.optimizer.state_dict(), "slow": self.slow, "steps": self.steps}


def make_optimizer(params, o: OptimConfig):
    """``adam`` | ``adamw`` | ``radam_lookahead`` over the trainable ``params``."""
    params = [p for p in params if p.requires_grad]
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.name == "radam_lookahead":
        return Lookahead(torch.optim.RAdam(params, lr=o.lr, weight_decay=o.weight_decay), o.lookahead_k,
                         o.lookahead_alpha)  # fmt: skip
    raise ValueError(f"unknown optimizer {o.name!r}; use adam, adamw or radam_lookahead")


def make_criterion(cfg: TrainConfig) -> nn.Module:
    """The contrastive loss of ``cfg.loss`` (``soundseek.losses``)."""
    if cfg.loss.name == "max_margin":
        return losses.get_loss("max_margin", margin=cfg.loss.margin)
    if cfg.loss.name in ("ntxent", "nt_xent"):
        return losses.get_loss("nt_xent", temperature=cfg.loss.temperature, learnable=cfg.loss.learnable_temperature)
    raise ValueError(f"loss.name must be 'ntxent' or 'max_margin', not {cfg.loss.name!r}")


# ---------------------------------------------------------------------------------------------
# the loop


def train_model(
    cfg: TrainConfig,
    train_set: FeatureSet,
    val_set: FeatureSet | None = None,
    model: nn.Module | None = None,
    progress: bool = True,
    targets: torch.Tensor | None = None,
) -> TrainResult:
    """Train ``model`` (default: built from ``cfg.model``) and return it with the best validation weights.

    Every epoch: clips in a seeded random order, ``cfg.batch_size`` clips per batch with one
    sampled caption each (or all, ``data.captions_per_clip``), long clips randomly cropped
    (:func:`train_crop_lengths`), augmentation, the contrastive loss of ``cfg.loss`` with
    same-clip (and optionally same-label) captions as positives.  ``targets``
    (``[n_captions, n_clips]`` scores on ``train_set``, e.g. an ensemble's
    :func:`similarity_matrix`) add distillation: each batch's sub-matrix becomes soft targets
    (softmax with ``loss.distill_temperature``, both directions) and the loss is
    ``distill_weight * distillation + (1 - distill_weight) * contrastive``.

    With ``val_set``, :func:`evaluate` runs after every epoch; the epoch with the best
    ``geo_mean`` is kept and training stops after ``cfg.patience`` epochs without a gain.
    Without one, the last epoch is kept (``best_score`` = minus its training loss).
    """
    if targets is not None and tuple(targets.shape) != (train_set.n_captions, train_set.n_clips):
        raise ValueError(f"targets must be [{train_set.n_captions}, {train_set.n_clips}], got {tuple(targets.shape)}")
    distill = targets is not None and cfg.loss.distill_weight > 0
    torch.set_num_threads(max(1, cfg.num_threads))
    if model is None:
        model = build_model(cfg)
    seed_everything(cfg.seed)
    criterion = make_criterion(cfg)
    params = [p for p in list(model.parameters()) + list(criterion.parameters()) if p.requires_grad]
    optim = make_optimizer(params, cfg.optim)
    gen = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = max(1, sum(1 for _ in epoch_batches(train_set, cfg, torch.Generator().manual_seed(0))))
    schedule = lr_lambda(cfg, steps_per_epoch)
    base_lrs = [g["lr"] for g in optim.param_groups]
    audio_experts = _audio_experts(model)
    crop = train_crop_lengths(model, cfg.data.max_frames)
    tokens = needs_tokens(model)
    lam = cfg.loss.distill_weight

    history: list[dict] = []
    best_score, best_epoch, best_state, stale, step = -math.inf, 0, None, 0, 0
    bar = _progress(progress)
    task = bar.add_task("training", total=cfg.epochs) if bar else None
    try:
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            epoch_losses = []
            for clips, caps in epoch_batches(train_set, cfg, gen):
                ab = train_set.audio_batch(clips, crop, gen, audio_experts)
                for name in list(ab.frames):
                    ab.frames[name], ab.mask[name] = augment_audio(ab.frames[name], ab.mask[name], cfg.augment, gen)
                tb = train_set.text_batch(caps, tokens)
                if cfg.augment.text_noise > 0:
                    tb.sentence = {k: text_noise(v, cfg.augment.text_noise, gen) for k, v in tb.sentence.items()}
                pos = batch_positive_mask(train_set, caps, clips, cfg.data.label_positives)
                sim = model.similarity(tb, ab)
                loss = criterion(sim, pos)
                if distill:
                    sub = targets[torch.as_tensor(caps)][:, torch.as_tensor(clips)]
                    q_t2a, q_a2t = losses.ensemble_targets([sub], cfg.loss.distill_temperature)
                    soft = losses.distillation_loss(sim, q_t2a, q_a2t, cfg.loss.temperature)
                    loss = lam * soft + (1 - lam) * loss
                for g, base in zip(optim.param_groups, base_lrs):
                    g["lr"] = base * schedule(step)
                optim.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.optim.grad_clip:
                    nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
                optim.step()
                step += 1
                epoch_losses.append(float(loss.detach()))
            row = {"epoch": epoch, "loss": float(np.mean(epoch_losses)) if epoch_losses else float("nan"),
                   "lr": base_lrs[0] * schedule(step)}  # fmt: skip
            if val_set is not None:
                val = evaluate(model, val_set)
                row.update({f"val_{k}": v for k, v in val.items() if not k.startswith("n_")})
                score = val["geo_mean"]
            else:
                score = -row["loss"]
            row["seconds"] = round(time.perf_counter() - t0, 3)
            history.append(row)
            if val_set is None:  # nothing to select on: keep the last epoch
                best_score, best_epoch = score, epoch
            elif score > best_score + 1e-9:
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
    """Write ``model/`` (weights + config + metrics), ``train_config.yaml``, ``metrics.json``, ``curve.png``.

    ``train_config.yaml`` is the config that ran, with ``out_dir`` set to the folder written
    (absolute), whatever ``cfg.out_dir`` said (e.g. ``soundseek train ... --out DIR``)."""
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
    dataclasses.replace(cfg, out_dir=str(out.resolve())).to_yaml(out / "train_config.yaml")
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
