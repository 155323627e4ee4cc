"""Masked NetVLAD aggregation of variable-length feature sequences.

NetVLAD (Arandjelovic et al.) turns a set of frames into residuals against learned cluster
centres.  *Ghost* clusters (Zhong et al.) take part in the soft assignment but are dropped from
the output, so uninformative frames can be absorbed instead of polluting real clusters.  The
audio/text retrieval papers (Miech et al., Liu et al., Koepke et al.) use it for temporal
aggregation of expert features and of text token features.

Padding never changes a result: padded frames get zero assignment weight and no normalisation
statistic is computed over the batch or over padded positions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class NetVLAD(nn.Module):
    """Soft-assignment NetVLAD over ``(B, T, D)`` frames with a ``(B, T)`` boolean mask.

    Output: ``(B, clusters * dim)`` L2-normalised (intra-normalised per cluster first).
    A row whose mask is all False (a missing expert) comes out as zeros.
    """

    def __init__(self, dim: int, clusters: int = 16, ghost_clusters: int = 1):
        super().__init__()
        if clusters < 1:
            raise ValueError(f"NetVLAD needs at least one cluster, got {clusters}")
        if ghost_clusters < 0:
            raise ValueError(f"ghost_clusters must be >= 0, got {ghost_clusters}")
        self.dim = dim
        self.clusters = clusters
        self.ghost_clusters = ghost_clusters
        scale = 1.0 / math.sqrt(dim)
        self.assign = nn.Linear(dim, clusters + ghost_clusters)
        nn.init.normal_(self.assign.weight, std=scale)
        nn.init.zeros_(self.assign.bias)
        # Centres only for the real clusters: ghosts have no residual in the output.
        self.centres = nn.Parameter(torch.randn(clusters, dim) * scale)
        self.norm = nn.LayerNorm(dim)  # per-frame, so independent of padding and batch

    @property
    def out_dim(self) -> int:
        return self.clusters * self.dim

    def assignments(self, x: Tensor, mask: Tensor) -> Tensor:
        """Soft assignment ``(B, T, K + G)``; padded frames are all zero."""
        logits = self.assign(self.norm(x))
        a = torch.softmax(logits, dim=-1)
        return a * mask.unsqueeze(-1).to(a.dtype)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"NetVLAD expects (B, T, {self.dim}) frames, got {tuple(x.shape)}")
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        a = self.assignments(x, mask)[..., : self.clusters]  # ghosts dropped here
        # sum_t a_tk (x_t - c_k) = a^T x - (sum_t a_tk) c_k
        vlad = torch.einsum("btk,btd->bkd", a, x) - a.sum(1).unsqueeze(-1) * self.centres
        vlad = F.normalize(vlad, dim=-1)  # intra-normalisation
        return F.normalize(vlad.flatten(1), dim=-1)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over valid frames; zeros for an all-padding row."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def masked_max(x: Tensor, mask: Tensor) -> Tensor:
    """Max over valid frames; zeros for an all-padding row."""
    filled = x.masked_fill(~mask.unsqueeze(-1), float("-inf"))
    out = filled.max(1).values
    return torch.where(mask.any(1, keepdim=True), out, torch.zeros_like(out))


class TemporalAggregator(nn.Module):
    """Collapse one expert's frames to a vector: ``"netvlad"``, ``"mean"``, ``"max"`` or ``"meanmax"``."""

    def __init__(self, dim: int, kind: str = "netvlad", clusters: int = 16, ghost_clusters: int = 1):
        super().__init__()
        self.kind = kind
        if kind == "netvlad":
            self.vlad = NetVLAD(dim, clusters, ghost_clusters)
            self.out_dim = self.vlad.out_dim
        elif kind in ("mean", "max"):
            self.out_dim = dim
        elif kind == "meanmax":
            self.out_dim = 2 * dim
        else:
            raise ValueError(f"unknown aggregation {kind!r}; use netvlad, mean, max or meanmax")

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        if self.kind == "netvlad":
            return self.vlad(x, mask)
        if self.kind == "mean":
            return masked_mean(x, mask)
        if self.kind == "max":
            return masked_max(x, mask)
        return torch.cat([masked_mean(x, mask), masked_max(x, mask)], dim=-1)
