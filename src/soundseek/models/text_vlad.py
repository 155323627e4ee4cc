"""The NetVLAD text encoder shared by MoEE and CE (Koepke et al.): token features -> NetVLAD
(20 clusters + 1 ghost) -> one gated embedding per audio expert + mixture logits."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .multi_expert import GatedEmbeddingUnit, MultiExpertConfig
from .netvlad import NetVLAD

__all__ = ["TextVLADEncoder"]


class TextVLADEncoder(nn.Module):
    """Token features -> NetVLAD -> one gated embedding per expert + mixture logits."""

    def __init__(self, config: MultiExpertConfig, n_experts: int):
        super().__init__()
        self.vlad = NetVLAD(config.text_dim, config.text_clusters, config.text_ghost_clusters)
        self.units = nn.ModuleList(
            GatedEmbeddingUnit(self.vlad.out_dim, config.embed_dim, config.dropout) for _ in range(n_experts)
        )
        self.mixture = nn.Linear(self.vlad.out_dim, n_experts)

    def forward(self, tokens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        v = self.vlad(tokens, mask)
        return torch.stack([u(v) for u in self.units], dim=1), self.mixture(v)
