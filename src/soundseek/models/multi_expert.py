"""The multi-expert base: configs, gated embedding units, mixture scoring and persistence shared
by MoEE, CE and MMT (which each import this module, never each other).

Batches are the shared :class:`~soundseek.models.heads.TextBatch` (the text expert's token
features + mask are required) and :class:`~soundseek.models.heads.AudioBatch` (one padded
``(B, T_e, D_e)`` sequence and ``(B, T_e)`` mask per audio expert).  A multi-expert model
maps the text to one embedding per expert plus mixture logits and the audio to one embedding
per expert plus an availability flag; :func:`mixture_similarity` combines them as in Miech et
al. (weights renormalised over the experts a clip actually has).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .heads import AudioBatch, TextBatch
from .registry import MODEL_TYPES, model_class

__all__ = [
    "ExpertSpec",
    "MultiExpertConfig",
    "ContextGating",
    "GatedEmbeddingUnit",
    "mixture_similarity",
    "MultiExpertModel",
    "build_multiexpert",
]


# ----------------------------------------------------------------------------- configs


@dataclass
class ExpertSpec:
    """One audio expert as a model input: its feature size, padded length and aggregation."""

    name: str
    dim: int
    max_len: int = 32
    aggregation: str = "netvlad"  # netvlad | mean | max | meanmax  (MoEE / CE)
    clusters: int = 8
    ghost_clusters: int = 1


@dataclass
class MultiExpertConfig:
    """Architecture of a multi-expert model; saved as ``config.json`` next to the weights."""

    kind: str  # moee | ce | mmt
    audio_experts: list[ExpertSpec]
    text_expert: str = "minilm"
    text_dim: int = 384
    text_max_len: int = 32
    text_clusters: int = 20  # Koepke et al.: NetVLAD with 20 clusters + 1 ghost over tokens
    text_ghost_clusters: int = 1
    embed_dim: int = 256  # per-expert joint space
    same_dim: int = 256  # CE: common size before collaborative gating
    d_model: int = 256  # MMT transformer width
    layers: int = 2  # MMT encoder layers (audio); text uses one
    heads: int = 4
    dropout: float = 0.1
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "MultiExpertConfig":
        d = {k: v for k, v in d.items() if k != "model_type"}
        d["audio_experts"] = [e if isinstance(e, ExpertSpec) else ExpertSpec(**e) for e in d["audio_experts"]]
        return cls(**d)

    @property
    def expert_names(self) -> list[str]:
        return [e.name for e in self.audio_experts]


# ----------------------------------------------------------------------------- blocks


class ContextGating(nn.Module):
    """``x * sigmoid(W x + b)``: lets the model re-weight feature dimensions (Miech et al.)."""

    def __init__(self, dim: int):
        super().__init__()
        self.fc = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.fc(x))


class GatedEmbeddingUnit(nn.Module):
    """Linear projection, context gating, L2 normalisation: the per-expert embedding of MoEE."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)
        self.gate = ContextGating(out_dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.gate(self.fc(self.drop(x))), dim=-1)


def mixture_similarity(t_emb: Tensor, t_logits: Tensor, a_emb: Tensor, a_avail: Tensor) -> Tensor:
    """Weighted sum of per-expert cosine similarities.

    ``t_emb (N, E, d)``, ``t_logits (N, E)`` mixture logits from the text, ``a_emb (M, E, d)``,
    ``a_avail (M, E)`` bool.  The softmax over experts is taken only over experts present for
    each clip, so a missing expert neither scores nor dilutes the others.  Returns ``(N, M)``.
    """
    sims = torch.einsum("ned,med->nme", t_emb, a_emb)  # (N, M, E)
    w = torch.exp(t_logits - t_logits.max(dim=1, keepdim=True).values)  # (N, E)
    w = w.unsqueeze(1) * a_avail.unsqueeze(0).to(w.dtype)  # (N, M, E)
    return (w * sims).sum(-1) / w.sum(-1).clamp_min(1e-12)


class MultiExpertModel(nn.Module):
    """Base class: subclasses implement :meth:`embed_text` and :meth:`embed_audio`."""

    kind = ""
    needs_tokens = True  # the text side reads token features (NetVLAD / transformer)

    def __init__(self, config: MultiExpertConfig):
        super().__init__()
        self.config = config

    def embed_text(self, text: TextBatch) -> tuple[Tensor, Tensor]:
        """-> per-expert text embeddings ``(N, E, d)`` and mixture logits ``(N, E)``."""
        raise NotImplementedError

    def embed_audio(self, audio: AudioBatch) -> tuple[Tensor, Tensor]:
        """-> per-expert audio embeddings ``(M, E, d)`` and availability ``(M, E)`` bool."""
        raise NotImplementedError

    @property
    def audio_experts(self) -> list[str]:
        return self.config.expert_names

    @property
    def text_experts(self) -> list[str]:
        return [self.config.text_expert]

    def _expert_inputs(self, audio: AudioBatch) -> list[tuple[Tensor, Tensor]]:
        return [audio.get(n) for n in self.config.expert_names]

    def _text_tokens(self, text: TextBatch) -> tuple[Tensor, Tensor]:
        """Token features ``(N, L, D)`` and mask ``(N, L)`` of the configured text expert."""
        name = self.config.text_expert
        if name not in text.tokens:
            raise KeyError(
                f"{self.kind} needs token features of text expert {name!r} (encode(..., with_tokens=True)); "
                f"the text batch has tokens for {sorted(text.tokens)}"
            )
        tokens = text.tokens[name]
        mask = text.token_mask.get(name)
        if mask is None:
            mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return tokens, mask.bool()

    def similarity(self, text_batch: TextBatch, audio_batch: AudioBatch) -> Tensor:
        """``(N_text, N_audio)`` scores: the contract every retrieval model follows."""
        t_emb, t_logits = self.embed_text(text_batch)
        a_emb, a_avail = self.embed_audio(audio_batch)
        return mixture_similarity(t_emb, t_logits, a_emb, a_avail)

    @classmethod
    def from_config_dict(cls, params: dict) -> "MultiExpertModel":
        """Build from a plain dict (training YAML); ``kind`` defaults to this class's kind."""
        params = dict(params)
        params.setdefault("kind", cls.kind)
        model = build_multiexpert(MultiExpertConfig.from_dict(params))
        if cls.kind and not isinstance(model, cls):
            raise ValueError(f"config kind {params['kind']!r} does not match model class {cls.__name__}")
        return model

    # ---- persistence (safetensors + JSON), same layout as the single-vector models
    def save_pretrained(self, directory: str | Path) -> Path:
        from safetensors.torch import save_file

        from ..features.store import share_like_other_files

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps({"model_type": self.kind, **asdict(self.config)}, indent=2))
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(d / "model.safetensors"))
        share_like_other_files(d / "model.safetensors")  # safetensors writes 0o600
        return d

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "MultiExpertModel":
        from safetensors.torch import load_file

        d = Path(directory)
        if not (d / "config.json").is_file():
            raise FileNotFoundError(f"{d} has no config.json: not a saved multi-expert model")
        config = MultiExpertConfig.from_dict(json.loads((d / "config.json").read_text()))
        model = build_multiexpert(config)
        if not isinstance(model, cls):
            raise ValueError(f"{d} holds a {config.kind!r} model, not a {cls.kind!r}")
        model.load_state_dict(load_file(str(d / "model.safetensors")))
        model.eval()
        return model


def build_multiexpert(config: MultiExpertConfig) -> MultiExpertModel:
    """Instantiate the model class that :mod:`soundseek.models.registry` names for ``config.kind``."""
    cls = model_class(config.kind) if config.kind in MODEL_TYPES else None
    if cls is None or not issubclass(cls, MultiExpertModel):
        kinds = sorted(k for k in MODEL_TYPES if issubclass(model_class(k), MultiExpertModel))
        raise ValueError(f"unknown multi-expert model kind {config.kind!r}; use one of {kinds}")
    return cls(config)
