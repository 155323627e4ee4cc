"""The papers' training settings, and two-stage training with estimated correspondences.

Both run on the one training loop (:func:`soundseek.train.trainer.train_model`) and score with
the one similarity function (:func:`soundseek.train.trainer.similarity_matrix`).

* :func:`paper_config`: the optimiser settings of the papers as a :class:`TrainConfig` — RAdam +
  Lookahead, lr 0.01, weight decay 0.001, lr x0.95 per epoch, max-margin 0.2 for MoEE/CE
  (Koepke et al.); Adam 5e-4 with step decay for MMT; Adam 1e-3 for the dual encoder.
* :func:`two_stage` (Primus et al., "estimated correspondences"): stage 1 trains K models; their
  similarity matrices on the training set are averaged; stage 2 trains with
  ``lambda * distillation + (1 - lambda) * contrastive`` where the targets are the softmax (with
  temperature, both directions) of the averaged matrix restricted to each batch.  K=1 is
  self-distillation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ..models.ensemble import average_similarities
from .config import TrainConfig, apply_overrides
from .data import FeatureSet
from .trainer import similarity_matrix, train_model

_COMMON = {"epochs": 10, "batch_size": 64, "patience": None, "optim.warmup_epochs": 0.0, "data.max_frames": 32}
PAPER_SETTINGS = {
    "moee": {"optim.name": "radam_lookahead", "lr": 0.01, "weight_decay": 0.001, "schedule": "exp", "gamma": 0.95,
             "loss": "max_margin", "margin": 0.2},
    "ce": {"optim.name": "radam_lookahead", "lr": 0.01, "weight_decay": 0.001, "schedule": "exp", "gamma": 0.95,
           "loss": "max_margin", "margin": 0.2},
    "mmt": {"optim.name": "adam", "lr": 5e-4, "weight_decay": 0.0, "schedule": "step", "gamma": 0.95,
            "step_epochs": 1, "loss": "max_margin", "margin": 0.2},
    "dual_encoder": {"optim.name": "adam", "lr": 1e-3, "weight_decay": 1e-4, "schedule": "exp", "gamma": 0.95,
                     "loss": "max_margin", "margin": 0.2},
}  # fmt: skip


def paper_config(kind: str, **overrides) -> TrainConfig:
    """A :class:`TrainConfig` with the papers' settings for ``kind``, then ``overrides`` (flat names
    such as ``lr``/``gamma``/``loss``/``distill_weight``, dotted paths or top-level fields; see
    :func:`soundseek.train.config.apply_overrides`).  No warm-up, no early stopping, training crops
    of 32 frames (multi-expert models: at most each expert's ``max_len``)."""
    if kind not in PAPER_SETTINGS:
        raise ValueError(f"no paper settings for model kind {kind!r}; known: {sorted(PAPER_SETTINGS)}")
    cfg = apply_overrides(TrainConfig(), {**_COMMON, **PAPER_SETTINGS[kind]}, f"paper settings of {kind}")
    return apply_overrides(cfg, overrides, "fit")


@dataclass
class TwoStageResult:
    stage1: list[nn.Module]
    stage2: list[nn.Module]
    targets: Tensor  # the averaged stage-1 similarity matrix on the training set


def two_stage(
    build: Callable[[], nn.Module],
    fs: FeatureSet,
    stage1_cfg: TrainConfig,
    stage2_cfg: TrainConfig,
    k: int = 1,
    n_stage2: int = 1,
    seed: int = 0,
    init_from_stage1: bool = True,
    progress: bool = False,
) -> TwoStageResult:
    """Primus et al.: K stage-1 models -> averaged train-set similarities -> stage-2 models.

    ``build()`` makes a fresh model.  Stage-1 model ``i`` trains with seed ``1000 * seed + i``;
    stage-2 model ``i`` starts from stage-1 model ``i % k`` (``init_from_stage1``) or from scratch
    and trains with the targets and ``stage2_cfg.loss.distill_weight`` (seed ``1000 * seed + 500 + i``).
    """
    if stage2_cfg.loss.distill_weight <= 0:
        raise ValueError("stage 2 needs loss.distill_weight > 0 (the lambda mixing distillation and NT-Xent)")
    stage1 = []
    for i in range(k):
        cfg = copy.deepcopy(stage1_cfg)
        cfg.seed = seed * 1000 + i
        torch.manual_seed(cfg.seed)
        stage1.append(train_model(cfg, fs, model=build(), progress=progress).model)
    targets = average_similarities([similarity_matrix(m, fs) for m in stage1])
    stage2 = []
    for i in range(n_stage2):
        cfg = copy.deepcopy(stage2_cfg)
        cfg.seed = seed * 1000 + 500 + i
        torch.manual_seed(cfg.seed)
        m = copy.deepcopy(stage1[i % k]) if init_from_stage1 else build()
        stage2.append(train_model(cfg, fs, model=m, targets=targets, progress=progress).model)
    return TwoStageResult(stage1, stage2, targets)
