"""Collaborative Experts (Liu et al. 2019), the audio-retrieval variant of Koepke et al.

Like MoEE, but before projection each expert's (aggregated, dimension-reduced) feature is gated
by the *other* experts: ``T_i = sum_{j != i} g([h_i, h_j])``, ``h_i <- h_i * sigmoid(f(T_i))``,
with ``g`` and ``f`` small MLPs.  Missing experts take no part in the gating.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .heads import AudioBatch, TextBatch
from .multi_expert import GatedEmbeddingUnit, MultiExpertConfig, MultiExpertModel
from .netvlad import TemporalAggregator
from .text_vlad import TextVLADEncoder


class CollaborativeGating(nn.Module):
    """Pairwise-relation gating of ``(B, E, d)`` expert features with availability ``(B, E)``."""

    def __init__(self, dim: int):
        super().__init__()
        self.g = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.f = nn.Sequential(nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, h: Tensor, avail: Tensor) -> Tensor:
        b, e, d = h.shape
        hi = h.unsqueeze(2).expand(b, e, e, d)
        hj = h.unsqueeze(1).expand(b, e, e, d)
        rel = self.g(torch.cat([hi, hj], dim=-1))  # (B, E_i, E_j, d)
        keep = avail.unsqueeze(1) & ~torch.eye(e, dtype=torch.bool, device=h.device)  # j present, j != i
        t = (rel * keep.unsqueeze(-1).to(rel.dtype)).sum(2)
        return h * torch.sigmoid(self.f(t))


class CollaborativeExperts(MultiExpertModel):
    kind = "ce"

    def __init__(self, config: MultiExpertConfig):
        super().__init__(config)
        specs = config.audio_experts
        self.aggregators = nn.ModuleList(
            TemporalAggregator(s.dim, s.aggregation, s.clusters, s.ghost_clusters) for s in specs
        )
        self.reduce = nn.ModuleList(nn.Linear(a.out_dim, config.same_dim) for a in self.aggregators)
        self.gating = CollaborativeGating(config.same_dim)
        self.audio_units = nn.ModuleList(
            GatedEmbeddingUnit(config.same_dim, config.embed_dim, config.dropout) for _ in specs
        )
        self.text = TextVLADEncoder(config, len(specs))

    def embed_text(self, text: TextBatch) -> tuple[Tensor, Tensor]:
        return self.text(*self._text_tokens(text))

    def embed_audio(self, audio: AudioBatch) -> tuple[Tensor, Tensor]:
        feats, avail = [], []
        for (x, m), agg, red in zip(self._expert_inputs(audio), self.aggregators, self.reduce):
            feats.append(red(agg(x, m)))
            avail.append(m.any(1))
        h, av = torch.stack(feats, 1), torch.stack(avail, 1)
        h = self.gating(h, av)
        embs = torch.stack([u(h[:, i]) for i, u in enumerate(self.audio_units)], 1)
        return embs, av
