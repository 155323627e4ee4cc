"""Multi-modal Transformer (Gabeur et al. 2020) over audio experts.

Audio: every expert's frames are projected to ``d_model``; each expert also gets an *aggregate*
token (max-pool of its projected frames).  Expert-type and temporal embeddings are added and one
transformer encoder attends across all experts' tokens; the output at each expert's aggregate
token is that expert's embedding.  Text: token features -> a small transformer with a learned
summary token -> one gated embedding unit per expert + softmax mixture weights.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .heads import AudioBatch, TextBatch
from .multi_expert import GatedEmbeddingUnit, MultiExpertConfig, MultiExpertModel
from .netvlad import masked_max


def _encoder(d_model: int, heads: int, layers: int, dropout: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        d_model, heads, dim_feedforward=2 * d_model, dropout=dropout, batch_first=True, norm_first=True
    )
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class MultiModalTransformer(MultiExpertModel):
    kind = "mmt"

    def __init__(self, config: MultiExpertConfig):
        super().__init__(config)
        d, specs = config.d_model, config.audio_experts
        self.proj = nn.ModuleList(nn.Linear(s.dim, d) for s in specs)
        self.expert_type = nn.Embedding(len(specs), d)
        self.max_pos = max(s.max_len for s in specs) + 1
        self.temporal = nn.Embedding(self.max_pos, d)  # position 0 = aggregate token
        self.audio_encoder = _encoder(d, config.heads, config.layers, config.dropout)
        self.audio_units = nn.ModuleList(GatedEmbeddingUnit(d, config.embed_dim, config.dropout) for _ in specs)
        # text side
        self.text_proj = nn.Linear(config.text_dim, d)
        self.text_pos = nn.Embedding(config.text_max_len + 1, d)
        self.text_cls = nn.Parameter(torch.zeros(1, 1, d))
        self.text_encoder = _encoder(d, config.heads, 1, config.dropout)
        self.text_units = nn.ModuleList(GatedEmbeddingUnit(d, config.embed_dim, config.dropout) for _ in specs)
        self.mixture = nn.Linear(d, len(specs))

    def embed_audio(self, audio: AudioBatch) -> tuple[Tensor, Tensor]:
        tokens, masks, agg_pos, avail = [], [], [], []
        offset = 0
        for i, ((x, m), proj) in enumerate(zip(self._expert_inputs(audio), self.proj)):
            b, t, _ = x.shape
            hp = proj(x)
            pos = torch.arange(1, t + 1, device=x.device).clamp_max(self.max_pos - 1)
            h = hp + self.temporal(pos) + self.expert_type.weight[i]
            agg = masked_max(hp, m) + self.temporal.weight[0] + self.expert_type.weight[i]
            tokens += [agg.unsqueeze(1), h]
            masks += [torch.ones(b, 1, dtype=torch.bool, device=x.device), m]
            agg_pos.append(offset)
            offset += t + 1
            avail.append(m.any(1))
        seq = torch.cat(tokens, 1)
        valid = torch.cat(masks, 1)
        out = self.audio_encoder(seq, src_key_padding_mask=~valid)
        embs = torch.stack([u(out[:, p]) for p, u in zip(agg_pos, self.audio_units)], 1)
        return embs, torch.stack(avail, 1)

    def embed_text(self, text: TextBatch) -> tuple[Tensor, Tensor]:
        x, m = self._text_tokens(text)
        n, length, _ = x.shape
        pos = torch.arange(1, length + 1, device=x.device).clamp_max(self.text_pos.num_embeddings - 1)
        h = self.text_proj(x) + self.text_pos(pos)
        cls = self.text_cls.expand(n, 1, -1) + self.text_pos.weight[0]
        seq = torch.cat([cls, h], 1)
        valid = torch.cat([torch.ones(n, 1, dtype=torch.bool, device=x.device), m], 1)
        pooled = self.text_encoder(seq, src_key_padding_mask=~valid)[:, 0]
        embs = torch.stack([u(pooled) for u in self.text_units], 1)
        return embs, self.mixture(pooled)
