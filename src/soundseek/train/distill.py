"""Training loop for the papers' models, and two-stage training with estimated correspondences.

* :class:`Lookahead` + :func:`make_optimizer`: RAdam + Lookahead with exponential lr decay
  (x0.95 per epoch), as used for MoEE/CE by Koepke et al.; Adam with step decay for MMT.
* :func:`fit`: batches of distinct clips with one random caption each; max-margin or NT-Xent
  loss (``soundseek.losses``), optionally mixed with distillation towards soft targets.
* :func:`two_stage` (Primus et al., "estimated correspondences"): stage 1 trains K models; their
  similarity matrices on the training set are averaged; stage 2 trains with
  ``lambda * distillation + (1 - lambda) * NT-Xent`` where the targets are the softmax (with
  temperature, both directions) of the averaged matrix restricted to each batch.  K=1 is
  self-distillation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
from torch import Tensor, nn

from .. import losses
from ..models.ensemble import average_similarities
from ..models.gated import MultiExpertModel, mixture_similarity
from .data import FeatureSet
from .multiexpert_data import audio_batch, text_batch


class Lookahead:
    """Lookahead (Zhang et al. 2019): every ``k`` inner steps, move slow weights ``alpha`` of the
    way towards the fast ones and restart the fast weights from there.  Wraps any optimiser;
    ``param_groups`` is the inner optimiser's, so lr decay applies as usual."""

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
    def step(self, closure: Callable | None = None):
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


@dataclass
class FitConfig:
    """One training run (the papers' defaults for MoEE/CE; see :func:`paper_fit_config`)."""

    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "radam_lookahead"  # radam_lookahead | adam | adamw
    lr: float = 0.01
    weight_decay: float = 0.001
    schedule: str = "exp"  # exp: lr *= gamma every epoch; step: every step_epochs epochs
    gamma: float = 0.95
    step_epochs: int = 1
    loss: str = "max_margin"  # max_margin | nt_xent
    margin: float = 0.2
    temperature: float = 0.07
    grad_clip: float | None = 2.0
    max_frames: int = 32  # single-expert models: crop length (multi-expert models use their ExpertSpec.max_len)
    text_max_len: int = 32
    distill_weight: float = 0.0  # lambda: weight of the distillation loss (needs targets)
    distill_temperature: float = 0.07  # temperature of the soft targets
    extra: dict = field(default_factory=dict)


def paper_fit_config(kind: str, **overrides) -> FitConfig:
    """The papers' optimiser settings: RAdam+Lookahead lr 0.01 wd 0.001 x0.95/epoch for MoEE/CE,
    Adam lr 5e-4 with step decay for MMT, Adam 1e-3 for the dual encoder."""
    base = {
        "moee": dict(optimizer="radam_lookahead", lr=0.01, weight_decay=0.001, schedule="exp", gamma=0.95),
        "ce": dict(optimizer="radam_lookahead", lr=0.01, weight_decay=0.001, schedule="exp", gamma=0.95),
        "mmt": dict(optimizer="adam", lr=5e-4, weight_decay=0.0, schedule="step", gamma=0.95, step_epochs=1),
        "dual_encoder": dict(optimizer="adam", lr=1e-3, weight_decay=1e-4, schedule="exp", gamma=0.95),
    }
    if kind not in base:
        raise ValueError(f"no paper settings for model kind {kind!r}; known: {sorted(base)}")
    return FitConfig(**{**base[kind], **overrides})


def make_optimizer(params: Iterable[nn.Parameter], cfg: FitConfig):
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "radam_lookahead":
        return Lookahead(torch.optim.RAdam(params, lr=cfg.lr, weight_decay=cfg.weight_decay))
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; use radam_lookahead, adam or adamw")


def _decay_lr(opt, cfg: FitConfig, epoch: int) -> None:
    """Called after epoch ``epoch`` (0-based) finished."""
    if cfg.schedule == "exp" or (cfg.schedule == "step" and (epoch + 1) % max(1, cfg.step_epochs) == 0):
        for g in opt.param_groups:
            g["lr"] *= cfg.gamma
    elif cfg.schedule not in ("exp", "step", "constant"):
        raise ValueError(f"unknown schedule {cfg.schedule!r}; use exp, step or constant")


def input_lengths(model: nn.Module, cfg: FitConfig) -> tuple[dict[str, int], list[str]]:
    """Per-expert crop lengths and the audio experts a model reads."""
    if isinstance(model, MultiExpertModel):
        return {s.name: s.max_len for s in model.config.audio_experts}, model.config.expert_names
    experts = list(getattr(model, "audio_experts", [model.config.audio_expert]))
    return {e: cfg.max_frames for e in experts}, experts


def needs_tokens(model: nn.Module) -> bool:
    """Whether a model reads token features (sentence-vector models do not)."""
    members = getattr(model, "members", None)
    if members is not None:
        return any(needs_tokens(m) for m in members)
    return bool(getattr(model, "needs_tokens", not hasattr(model, "encode_text")))


def _contrastive(cfg: FitConfig, sim: Tensor, pos: Tensor) -> Tensor:
    if cfg.loss == "max_margin":
        return losses.max_margin_loss(sim, pos, cfg.margin)
    if cfg.loss in ("nt_xent", "ntxent"):
        return losses.nt_xent_loss(sim, pos, cfg.temperature)
    raise ValueError(f"unknown loss {cfg.loss!r}; use max_margin or nt_xent")


def fit(
    model: nn.Module,
    fs: FeatureSet,
    cfg: FitConfig,
    seed: int = 0,
    targets: Tensor | None = None,
    progress: bool = False,
) -> list[float]:
    """Train ``model`` in place on all clips of ``fs``; returns the mean loss of every epoch.

    ``targets`` (``[n_captions, n_clips]`` similarities of an ensemble on ``fs``) switch on the
    two-stage objective: ``distill_weight * distillation + (1 - distill_weight) * NT-Xent``.
    """
    if targets is not None and tuple(targets.shape) != (fs.n_captions, fs.n_clips):
        raise ValueError(f"targets must be [{fs.n_captions}, {fs.n_clips}], got {tuple(targets.shape)}")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    lengths, experts = input_lengths(model, cfg)
    opt = make_optimizer(model.parameters(), cfg)
    n = fs.n_clips
    bs = min(cfg.batch_size, n)
    history = []
    model.train()
    for epoch in _maybe_progress(range(cfg.epochs), progress, "training"):
        order = torch.randperm(n, generator=gen).numpy()
        total, count = 0.0, 0
        for lo in range(0, n - bs + 1, bs):  # drop the ragged last batch: tiny batches are noisy
            clips = order[lo : lo + bs]
            caps = np.asarray(
                [fs.clip_captions[c][int(torch.randint(len(fs.clip_captions[c]), (), generator=gen))] for c in clips]
            )
            tb = text_batch(fs, caps, cfg.text_max_len, with_tokens=needs_tokens(model))
            sim = model.similarity(tb, audio_batch(fs, clips, lengths, gen, experts))
            pos = losses.positive_mask(torch.as_tensor(fs.caption_clip[caps]), torch.as_tensor(clips))
            if targets is None or cfg.distill_weight <= 0:
                loss = _contrastive(cfg, sim, pos)
            else:
                sub = targets[torch.as_tensor(caps)][:, torch.as_tensor(clips)]
                q_t2a, q_a2t = losses.ensemble_targets([sub], cfg.distill_temperature)
                distill = losses.distillation_loss(sim, q_t2a, q_a2t, cfg.temperature)
                lam = cfg.distill_weight
                loss = lam * distill + (1 - lam) * losses.nt_xent_loss(sim, pos, cfg.temperature)
            opt.zero_grad()
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            total += loss.item()
            count += 1
        history.append(total / max(1, count))
        _decay_lr(opt, cfg, epoch)
    model.eval()
    return history


@torch.no_grad()
def similarity_matrix(model: nn.Module, fs: FeatureSet, cfg: FitConfig | None = None, chunk: int = 256) -> Tensor:
    """``[n_captions, n_clips]`` scores of every caption of ``fs`` against every clip (eval mode,
    whole clips subsampled evenly to the configured lengths)."""
    cfg = cfg or FitConfig()
    was_training = model.training
    model.eval()
    lengths, experts = input_lengths(model, cfg)
    clips = np.arange(fs.n_clips)
    caps = np.arange(fs.n_captions)
    rows = []
    if isinstance(model, MultiExpertModel):  # embed each side once
        a = [model.embed_audio(audio_batch(fs, clips[lo : lo + chunk], lengths, None, experts))
             for lo in range(0, len(clips), chunk)]
        a_emb, a_avail = torch.cat([x[0] for x in a]), torch.cat([x[1] for x in a])
        for lo in range(0, len(caps), chunk):
            t_emb, t_logits = model.embed_text(text_batch(fs, caps[lo : lo + chunk], cfg.text_max_len))
            rows.append(mixture_similarity(t_emb, t_logits, a_emb, a_avail))
    else:
        audio = audio_batch(fs, clips, lengths, None, experts)
        for lo in range(0, len(caps), chunk):
            tb = text_batch(fs, caps[lo : lo + chunk], cfg.text_max_len, with_tokens=needs_tokens(model))
            rows.append(model.similarity(tb, audio))
    model.train(was_training)
    return torch.cat(rows)


@dataclass
class TwoStageResult:
    stage1: list[nn.Module]
    stage2: list[nn.Module]
    targets: Tensor  # the averaged stage-1 similarity matrix on the training set


def two_stage(
    build: Callable[[], nn.Module],
    fs: FeatureSet,
    stage1_cfg: FitConfig,
    stage2_cfg: FitConfig,
    k: int = 1,
    n_stage2: int = 1,
    seed: int = 0,
    init_from_stage1: bool = True,
    progress: bool = False,
) -> TwoStageResult:
    """Primus et al.: K stage-1 models -> averaged train-set similarities -> stage-2 models.

    ``build()`` makes a fresh model.  Stage-2 model ``i`` starts from stage-1 model ``i % k``
    (``init_from_stage1``) or from scratch, and trains with ``stage2_cfg.distill_weight``.
    """
    if stage2_cfg.distill_weight <= 0:
        raise ValueError("stage 2 needs distill_weight > 0 (the lambda mixing distillation and NT-Xent)")
    stage1 = []
    for i in range(k):
        torch.manual_seed(seed * 1000 + i)
        m = build()
        fit(m, fs, stage1_cfg, seed=seed * 1000 + i, progress=progress)
        stage1.append(m)
    targets = average_similarities([similarity_matrix(m, fs, stage1_cfg) for m in stage1])
    stage2 = []
    for i in range(n_stage2):
        torch.manual_seed(seed * 1000 + 500 + i)
        m = copy.deepcopy(stage1[i % k]) if init_from_stage1 else build()
        fit(m, fs, stage2_cfg, seed=seed * 1000 + 500 + i, targets=targets, progress=progress)
        stage2.append(m)
    return TwoStageResult(stage1, stage2, targets)


def _maybe_progress(it, enabled: bool, label: str):
    if not enabled:
        return it
    from rich.progress import track

    return track(it, description=label)
