"""Mixture of Embedding Experts (Miech et al. 2018), as used for audio retrieval by Koepke et al.

Each audio expert is aggregated over time (NetVLAD or pooling) and projected by its own gated
embedding unit into its own joint space.  The text (token features -> NetVLAD, 20 clusters +
1 ghost) is projected once per expert, and a linear layer on the text predicts softmax mixture
weights: the score is the weighted sum of per-expert cosine similarities.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .heads import AudioBatch, TextBatch
from .multi_expert import GatedEmbeddingUnit, MultiExpertConfig, MultiExpertModel
from .netvlad import TemporalAggregator
from .text_vlad import TextVLADEncoder


class MoEE(MultiExpertModel):
    kind = "moee"

    def __init__(self, config: MultiExpertConfig):
        super().__init__(config)
        specs = config.audio_experts
        self.aggregators = nn.ModuleList(
            TemporalAggregator(s.dim, s.aggregation, s.clusters, s.ghost_clusters) for s in specs
        )
        self.audio_units = nn.ModuleList(
            GatedEmbeddingUnit(a.out_dim, config.embed_dim, config.dropout) for a in self.aggregators
        )
        self.text = TextVLADEncoder(config, len(specs))

    def embed_text(self, text: TextBatch) -> tuple[Tensor, Tensor]:
        return self.text(*self._text_tokens(text))

    def embed_audio(self, audio: AudioBatch) -> tuple[Tensor, Tensor]:
        embs, avail = [], []
        for (x, m), agg, unit in zip(self._expert_inputs(audio), self.aggregators, self.audio_units):
            embs.append(unit(agg(x, m)))
            avail.append(m.any(1))
        return torch.stack(embs, 1), torch.stack(avail, 1)
