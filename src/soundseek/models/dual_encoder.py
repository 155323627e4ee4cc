"""The default text-audio model: two small MLP heads over frozen experts (Mei et al., 2022).

Audio: an expert's frames are pooled over time (masked mean + max), projected by an MLP and
L2-normalised.  Text: the text expert's sentence vector goes through its own MLP and is
L2-normalised.  Scores are cosine similarities, so one vector per clip/caption can be served
by a plain inner-product index.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .heads import (AudioBatch, MLPHead, SingleExpertPair, TextBatch, config_from_dict, l2_normalize, masked_pool,
                    pooled_dim)
from .pretrained import jsonable, read_model_dir, save_model_dir

METRICS_FILE = "metrics.json"


@dataclass
class DualEncoderConfig:
    """Everything needed to rebuild a :class:`DualEncoder` (saved as ``config.json``)."""

    audio_expert: str = "aisfx"
    text_expert: str = "minilm"
    audio_dim: int = 512
    text_dim: int = 384
    embed_dim: int = 256
    hidden: int = 512
    audio_hidden: int | None = None  # per-side override of `hidden`; 0 = a linear head
    text_hidden: int | None = None
    pooling: str = "meanmax"  # "mean" | "max" | "meanmax"
    dropout: float = 0.1
    input_norm: bool = True  # LayerNorm (no affine) on the inputs: experts differ wildly in scale

    @classmethod
    def from_dict(cls, d: dict) -> "DualEncoderConfig":
        return config_from_dict(cls, d, "DualEncoder")


class DualEncoder(SingleExpertPair, nn.Module):
    """Two MLP heads into one shared, L2-normalised space."""

    model_type = "dual_encoder"
    needs_tokens = False  # sentence vectors only: the trainer need not cache token features

    def __init__(self, config: DualEncoderConfig | None = None, **overrides):
        super().__init__()
        if config is None:
            config = DualEncoderConfig(**overrides)
        elif overrides:
            config = DualEncoderConfig(**{**asdict(config), **overrides})
        masked_pool(torch.zeros(1, 1, 1), None, config.pooling)  # validate pooling early
        self.config = config
        a_in = pooled_dim(config.audio_dim, config.pooling)
        self.audio_norm = nn.LayerNorm(a_in, elementwise_affine=False) if config.input_norm else nn.Identity()
        self.text_norm = (
            nn.LayerNorm(config.text_dim, elementwise_affine=False) if config.input_norm else nn.Identity()
        )
        a_hid = config.hidden if config.audio_hidden is None else config.audio_hidden
        t_hid = config.hidden if config.text_hidden is None else config.text_hidden
        self.audio_head = MLPHead(a_in, a_hid, config.embed_dim, config.dropout)
        self.text_head = MLPHead(config.text_dim, t_hid, config.embed_dim, config.dropout)
        self.training_metrics: dict = {}

    @classmethod
    def from_config_dict(cls, params: dict) -> "DualEncoder":
        """Build from a plain dict (a training YAML's ``model.params``), rejecting unknown keys."""
        return cls(DualEncoderConfig.from_dict(params))

    # -- the single-vector contract (expert lists and similarity: SingleExpertPair) ------
    def encode_audio(self, frames: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, T, D) frames + (B, T) bool mask -> (B, E) unit vectors."""
        if frames.shape[-1] != self.config.audio_dim:
            raise ValueError(
                f"audio frames have dim {frames.shape[-1]}, this model expects {self.config.audio_dim} "
                f"({self.config.audio_expert} features)"
            )
        pooled = masked_pool(frames, mask, self.config.pooling)
        return l2_normalize(self.audio_head(self.audio_norm(pooled)))

    def encode_text(self, sentence: Tensor) -> Tensor:
        """(N, Dt) sentence vectors -> (N, E) unit vectors."""
        if sentence.shape[-1] != self.config.text_dim:
            raise ValueError(
                f"sentence vectors have dim {sentence.shape[-1]}, this model expects {self.config.text_dim} "
                f"({self.config.text_expert} features)"
            )
        return l2_normalize(self.text_head(self.text_norm(sentence)))

    def export_text_side(self):
        """``encode_text`` as a torch-free :class:`~soundseek.models.text_side.TextSide`."""
        from .heads import module_steps
        from .text_side import L2Normalize, Sequential

        return Sequential([*module_steps(self.text_norm), *module_steps(self.text_head.net), L2Normalize(1e-8)])

    # -- persistence ---------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, metrics: dict | None = None) -> Path:
        """Write ``model.safetensors`` + ``config.json`` (+ ``metrics.json``) into ``directory``."""
        out = save_model_dir(self, directory, self.model_type, self.config)
        metrics = metrics if metrics is not None else self.training_metrics
        if metrics:
            (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2, default=jsonable) + "\n")
        return out

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "DualEncoder":
        d, cfg, state = read_model_dir(directory, cls.model_type, "DualEncoder", default_type=cls.model_type)
        model = cls(DualEncoderConfig.from_dict(cfg))
        model.load_state_dict(state)
        if (d / METRICS_FILE).is_file():
            model.training_metrics = json.loads((d / METRICS_FILE).read_text())
        model.eval()
        return model


@dataclass
class NativeSpaceConfig:
    audio_expert: str
    text_expert: str


class NativeSpace(SingleExpertPair, nn.Module):
    """Experts that already share a space (CLAP): no trained head, just pooling and L2.

    ``encode_audio`` = masked mean of the frames, L2-normalised; ``encode_text`` = L2 of the
    sentence vector.
    """

    model_type = "native"

    def __init__(self, audio_expert: str, text_expert: str):
        super().__init__()
        self.config = NativeSpaceConfig(audio_expert, text_expert)

    def encode_audio(self, frames: Tensor, mask: Tensor | None = None) -> Tensor:
        return l2_normalize(masked_pool(frames, mask, "mean"))

    def encode_text(self, sentence: Tensor) -> Tensor:
        return l2_normalize(sentence)

    def export_text_side(self):
        from .text_side import L2Normalize

        return L2Normalize(1e-8)

    def similarity(self, text_batch: TextBatch, audio_batch: AudioBatch) -> Tensor:
        t, a = self.encode_pair(text_batch, audio_batch)
        if t.shape[-1] != a.shape[-1]:
            raise ValueError(
                f"{self.config.audio_expert} ({a.shape[-1]}-d) and {self.config.text_expert} "
                f"({t.shape[-1]}-d) do not share a space; train a DualEncoder instead"
            )
        return t @ a.T


