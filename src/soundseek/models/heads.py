"""Building blocks shared by the retrieval heads: batches, masked pooling, MLP projections.

Every model in :mod:`soundseek.models` consumes the same two batch types, so the trainer,
the losses and the metrics never need to know which model they are driving.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
import torch.nn.functional as F

POOLINGS = ("mean", "max", "meanmax")


@dataclass
class AudioBatch:
    """Frame features of B clips for one or more audio experts.

    ``frames[expert]``: (B, T, D) float, zero-padded to the longest clip.
    ``mask[expert]``: (B, T) bool, True where a frame is real (never all False for a row).
    """

    frames: dict[str, Tensor]
    mask: dict[str, Tensor]

    def __len__(self) -> int:
        return next(iter(self.frames.values())).shape[0]

    def to(self, device: torch.device | str) -> "AudioBatch":
        return AudioBatch(
            {k: v.to(device) for k, v in self.frames.items()},
            {k: v.to(device) for k, v in self.mask.items()},
        )

    def get(self, expert: str) -> tuple[Tensor, Tensor]:
        """(frames, mask) of one expert, with an error naming what the batch does hold."""
        if expert not in self.frames:
            raise KeyError(f"audio batch has no features of expert {expert!r}; it has {sorted(self.frames)}")
        return self.frames[expert], self.mask[expert]


@dataclass
class TextBatch:
    """Text features of N captions for one or more text experts.

    ``sentence[expert]``: (N, D) sentence vectors.  ``tokens``/``token_mask`` are optional
    (N, L, D) / (N, L) token features for models that attend over words.
    """

    sentence: dict[str, Tensor]
    tokens: dict[str, Tensor] = field(default_factory=dict)
    token_mask: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return next(iter(self.sentence.values())).shape[0]

    def to(self, device: torch.device | str) -> "TextBatch":
        return TextBatch(
            {k: v.to(device) for k, v in self.sentence.items()},
            {k: v.to(device) for k, v in self.tokens.items()},
            {k: v.to(device) for k, v in self.token_mask.items()},
        )

    def get(self, expert: str) -> Tensor:
        if expert not in self.sentence:
            raise KeyError(f"text batch has no features of expert {expert!r}; it has {sorted(self.sentence)}")
        return self.sentence[expert]


class SingleExpertPair:
    """The single-vector contract of a model over one audio and one text expert, named by its
    ``config.audio_expert`` / ``config.text_expert``: the expert lists and ``similarity`` (cosine of
    ``encode_text`` and ``encode_audio``).  Mixed into ``nn.Module`` subclasses."""

    @property
    def audio_experts(self) -> list[str]:
        return [self.config.audio_expert]

    @property
    def text_experts(self) -> list[str]:
        return [self.config.text_expert]

    def encode_pair(self, text_batch: TextBatch, audio_batch: AudioBatch) -> tuple[Tensor, Tensor]:
        """(text vectors, audio vectors) of the two batches, from this model's experts."""
        t = self.encode_text(text_batch.get(self.config.text_expert))
        a = self.encode_audio(*audio_batch.get(self.config.audio_expert))
        return t, a

    def similarity(self, text_batch: TextBatch, audio_batch: AudioBatch) -> Tensor:
        """Cosine similarities S[N_text, N_audio]."""
        t, a = self.encode_pair(text_batch, audio_batch)
        return t @ a.T


def masked_pool(frames: Tensor, mask: Tensor | None, pooling: str = "meanmax") -> Tensor:
    """Pool (B, T, D) frames over time, ignoring padded frames entirely.

    ``meanmax`` concatenates the masked mean and the masked max (B, 2D): the mean describes the
    whole clip, the max keeps short events (a single door slam) from being averaged away.
    Padding never changes the result: padded rows are excluded from both statistics.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {POOLINGS}")
    if frames.dim() != 3:
        raise ValueError(f"frames must be (B, T, D), got shape {tuple(frames.shape)}")
    if mask is None:
        mask = torch.ones(frames.shape[:2], dtype=torch.bool, device=frames.device)
    if mask.shape != frames.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match frames {tuple(frames.shape[:2])}")
    mask = mask.bool()
    if not bool(mask.any(dim=1).all()):
        raise ValueError("every clip needs at least one real frame (a mask row is all False)")
    m = mask.unsqueeze(-1)
    parts = []
    if pooling in ("mean", "meanmax"):
        count = m.sum(dim=1).clamp_min(1).to(frames.dtype)
        parts.append(frames.masked_fill(~m, 0.0).sum(dim=1) / count)
    if pooling in ("max", "meanmax"):
        parts.append(frames.masked_fill(~m, float("-inf")).amax(dim=1))
    return torch.cat(parts, dim=-1)


def pooled_dim(dim: int, pooling: str) -> int:
    return 2 * dim if pooling == "meanmax" else dim


class MLPHead(nn.Module):
    """Linear-ReLU-(Dropout)-Linear projection into the shared space (Mei et al.).

    ``hidden=0`` gives a single (dropout +) linear map, which keeps the expert's own geometry
    and can generalise better to queries unlike the training captions.
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        if hidden > 0:
            layers = [nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)]
        else:
            layers = [nn.Dropout(dropout), nn.Linear(in_dim, out_dim)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def export_steps(self) -> list:
        """The head (eval mode: dropout is the identity) as numpy text-side steps."""
        return module_steps(self.net)


def module_steps(module: nn.Module) -> list:
    """Numpy :mod:`.text_side` steps equal to an eval-mode stack of Linear/ReLU/Dropout/LayerNorm/
    Identity modules; other modules raise NotImplementedError (no fast path for that model)."""
    from . import text_side as ts

    mods = list(module) if isinstance(module, nn.Sequential) else [module]
    steps = []
    for m in mods:
        if isinstance(m, nn.Sequential):
            steps.extend(module_steps(m))
        elif isinstance(m, nn.Linear):
            steps.append(ts.Linear(_np(m.weight), None if m.bias is None else _np(m.bias)))
        elif isinstance(m, nn.ReLU):
            steps.append(ts.ReLU())
        elif isinstance(m, (nn.Dropout, nn.Identity)):
            continue
        elif isinstance(m, nn.LayerNorm) and len(m.normalized_shape) == 1:
            steps.append(ts.LayerNorm(m.eps, None if m.weight is None else _np(m.weight),
                                      None if m.bias is None else _np(m.bias)))
        else:
            raise NotImplementedError(f"no numpy text side for {type(m).__name__}")
    return steps


def _np(t: Tensor):
    return t.detach().float().cpu().numpy().copy()


def l2_normalize(x: Tensor) -> Tensor:
    return F.normalize(x, p=2, dim=-1, eps=1e-8)


def config_from_dict(cls, d: dict, what: str):
    """Build the dataclass ``cls`` from a saved ``config.json`` dict; unknown keys are an error
    naming ``what`` (``model_type`` is ignored: it selects the class, it is not a setting)."""
    from dataclasses import fields

    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known - {"model_type"})
    if unknown:
        raise ValueError(f"unknown {what} config keys {unknown}; known: {sorted(known)}")
    return cls(**{k: v for k, v in d.items() if k in known})
