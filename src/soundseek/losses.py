"""Contrastive losses on a text x audio similarity matrix.

Every loss takes ``S[N_text, N_audio]`` (e.g. cosine similarities) and a boolean positive mask
``P[N_text, N_audio]``.  A pair is a *negative* only where ``P`` is False, so several captions of
one audio in a batch are all positives of that audio and never negatives of it (nor is that
audio a negative of any of them).  Build ``P`` with :func:`positive_mask`.

* :func:`max_margin_loss` -- bidirectional hinge (Koepke et al. 2022, eq. 1; margin 0.2).
* :func:`nt_xent_loss` / :class:`NTXentLoss` -- symmetric InfoNCE with optional learnable
  temperature.
* :func:`distillation_loss` + :func:`ensemble_targets` -- soft targets from an ensemble
  (Primus et al.), both directions.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def positive_mask(text_ids: Sequence | torch.Tensor, audio_ids: Sequence | torch.Tensor) -> torch.Tensor:
    """``P[i, j] = text_ids[i] == audio_ids[j]``: which audio each caption describes.

    ``text_ids[i]`` is the id of the audio caption ``i`` belongs to, ``audio_ids[j]`` the id of
    batch column ``j`` (any hashable ints; the same audio twice in a batch is handled too).
    """
    t = torch.as_tensor(text_ids).reshape(-1, 1)
    a = torch.as_tensor(audio_ids).reshape(1, -1)
    return t == a


def _check(sim: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    if sim.ndim != 2:
        raise ValueError(f"similarity matrix must be 2-D [N_text, N_audio], got shape {tuple(sim.shape)}")
    if pos.shape != sim.shape:
        raise ValueError(f"positive mask shape {tuple(pos.shape)} != similarity shape {tuple(sim.shape)}")
    pos = pos.to(device=sim.device, dtype=torch.bool)
    if not bool(pos.any()):
        raise ValueError("positive mask has no positives: every caption needs its audio in the batch")
    return pos


# --------------------------------------------------------------------------------------
# max-margin ranking


def max_margin_loss(sim: torch.Tensor, pos: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Bidirectional max-margin ranking loss, averaged over all valid (positive, negative) terms.

    For every positive pair (t, a) and every negative audio a' of t and negative caption t' of a:
    ``[m + S[t,a'] - S[t,a]]_+`` (t2a) and ``[m + S[t',a] - S[t,a]]_+`` (a2t).  With one caption
    per audio this is Koepke et al.'s eq. 1 divided by 2(B-1) (the "fix_norm" mean of their
    code: the diagonal is excluded from the average).
    """
    pos = _check(sim, pos)
    ti, ai = pos.nonzero(as_tuple=True)
    s_pos = sim[ti, ai].unsqueeze(1)  # [K, 1]
    t2a = F.relu(margin + sim[ti] - s_pos)  # [K, N_audio]: caption t vs other audios
    t2a_valid = ~pos[ti]
    a2t = F.relu(margin + sim[:, ai].T - s_pos)  # [K, N_text]: audio a vs other captions
    a2t_valid = ~pos[:, ai].T
    n_terms = t2a_valid.sum() + a2t_valid.sum()
    if int(n_terms) == 0:
        return sim.sum() * 0.0  # no negatives: nothing to rank (keeps the graph)
    total = (t2a * t2a_valid).sum() + (a2t * a2t_valid).sum()
    return total / n_terms


# --------------------------------------------------------------------------------------
# NT-Xent / InfoNCE


def _multi_positive_ce(logits: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Row-wise InfoNCE where each positive competes only with the row's negatives.

    loss(row i, positive j) = -log( e^{l_ij} / (e^{l_ij} + sum_{n negative} e^{l_in}) ),
    averaged over a row's positives, then over rows that have a positive.  Other positives of
    the row never appear in the denominator, so they are not pushed apart.
    """
    neg_logits = logits.masked_fill(pos, float("-inf"))
    neg_lse = torch.logsumexp(neg_logits, dim=1, keepdim=True)  # -inf when a row has no negatives
    per_pair = torch.logaddexp(logits, neg_lse) - logits  # [R, C], meaningful where pos
    per_pair = torch.where(pos, per_pair, torch.zeros_like(per_pair))
    n_pos = pos.sum(dim=1)
    has = n_pos > 0
    per_row = per_pair.sum(dim=1)[has] / n_pos[has]
    return per_row.mean()


def nt_xent_loss(sim: torch.Tensor, pos: torch.Tensor, temperature: float | torch.Tensor = 0.07) -> torch.Tensor:
    """Symmetric NT-Xent: mean of the t2a (rows) and a2t (columns) multi-positive InfoNCE."""
    pos = _check(sim, pos)
    logits = sim / temperature
    return 0.5 * (_multi_positive_ce(logits, pos) + _multi_positive_ce(logits.T, pos.T))


class LearnableTemperature(nn.Module):
    """Holds log(tau) so tau stays positive; clamped to [min_tau, max_tau] for stability."""

    def __init__(self, init: float = 0.07, min_tau: float = 0.01, max_tau: float = 1.0) -> None:
        super().__init__()
        if not (min_tau <= init <= max_tau):
            raise ValueError(f"initial temperature {init} outside [{min_tau}, {max_tau}]")
        self.log_tau = nn.Parameter(torch.tensor(math.log(init), dtype=torch.float32))
        self.min_tau, self.max_tau = min_tau, max_tau

    def forward(self) -> torch.Tensor:
        return self.log_tau.exp().clamp(self.min_tau, self.max_tau)


class NTXentLoss(nn.Module):
    """:func:`nt_xent_loss` as a module; ``learnable=True`` trains the temperature too."""

    def __init__(self, temperature: float = 0.07, learnable: bool = False) -> None:
        super().__init__()
        self.temperature = LearnableTemperature(temperature) if learnable else None
        self._fixed = float(temperature)

    @property
    def tau(self) -> float:
        return float(self.temperature().detach()) if self.temperature is not None else self._fixed

    def forward(self, sim: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        tau = self.temperature() if self.temperature is not None else self._fixed
        return nt_xent_loss(sim, pos, tau)


class MaxMarginLoss(nn.Module):
    """:func:`max_margin_loss` as a module."""

    def __init__(self, margin: float = 0.2) -> None:
        super().__init__()
        self.margin = float(margin)

    def forward(self, sim: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return max_margin_loss(sim, pos, self.margin)


# --------------------------------------------------------------------------------------
# distillation (Primus et al.)


@torch.no_grad()
def ensemble_targets(
    sims: Sequence[torch.Tensor], temperature: float = 0.07
) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft targets from an ensemble's similarity matrices (each ``[N_text, N_audio]``).

    The matrices are averaged, then ``t2a = softmax(S/tau, over audios)`` ([N_text, N_audio])
    and ``a2t = softmax(S^T/tau, over captions)`` ([N_audio, N_text]); every row sums to 1.
    """
    if len(sims) == 0:
        raise ValueError("need at least one similarity matrix")
    shapes = {tuple(s.shape) for s in sims}
    if len(shapes) != 1:
        raise ValueError(f"ensemble similarity matrices differ in shape: {sorted(shapes)}")
    mean = torch.stack([s.detach().float() for s in sims]).mean(dim=0)
    return F.softmax(mean / temperature, dim=1), F.softmax(mean.T / temperature, dim=1)


def distillation_loss(
    sim: torch.Tensor,
    target_t2a: torch.Tensor,
    target_a2t: torch.Tensor,
    temperature: float | torch.Tensor = 0.07,
    kind: str = "ce",
) -> torch.Tensor:
    """Match ``softmax(S/tau)`` to soft targets in both directions (mean of the two).

    ``kind="ce"``: cross-entropy ``-sum q log p``; ``kind="kl"``: KL(q || p) (same gradient,
    zero at the optimum).  ``target_t2a`` is [N_text, N_audio], ``target_a2t`` [N_audio, N_text].
    """
    if kind not in ("ce", "kl"):
        raise ValueError(f"kind must be 'ce' or 'kl', not {kind!r}")
    if target_t2a.shape != sim.shape or target_a2t.shape != sim.T.shape:
        raise ValueError(
            f"targets must be {tuple(sim.shape)} (t2a) and {tuple(sim.T.shape)} (a2t); "
            f"got {tuple(target_t2a.shape)} and {tuple(target_a2t.shape)}"
        )
    logits = sim / temperature

    def one(lg: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        q = q.to(lg)
        logp = F.log_softmax(lg, dim=1)
        ce = -(q * logp).sum(dim=1)
        if kind == "kl":
            ce = ce + (q * torch.log(q.clamp_min(1e-12))).sum(dim=1)
        return ce.mean()

    return 0.5 * (one(logits, target_t2a) + one(logits.T, target_a2t))


def get_loss(name: str, **kwargs) -> nn.Module:
    """Loss module by name (``max_margin`` | ``nt_xent``) for configs."""
    if name == "max_margin":
        return MaxMarginLoss(**kwargs)
    if name in ("nt_xent", "ntxent", "infonce"):
        return NTXentLoss(**kwargs)
    raise ValueError(f"unknown loss {name!r}; choose 'max_margin' or 'nt_xent'")
