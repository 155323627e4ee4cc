"""A single-vector model that reads one part of a composite expert's frames.

The composite expert ``yamnet+aisfx`` (:mod:`soundseek.experts.composite`) puts YAMNet's 1024-d
and aisfx's 512-d frames side by side.  Models trained on either expert alone (the default's
label bridge and heads over ``yamnet``, the ``aisfx-minilm-v1`` heads over ``aisfx``) serve an
index of the composite expert through :class:`ExpertPart`: it hands the model its columns of the
frames and passes everything else (text side, class vectors for a query gate) through.  An
:class:`~soundseek.models.ensemble.EnsembleModel` of such parts is the quality profile's model.

The wrapped model is saved in a subfolder, or *referenced*: ``model: "shipped:default/member0"``
names a folder of a model shipped with the package, so the quality model adds only a few
``config.json`` files to the package (``model_dirs.resolve_model_ref``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from torch import Tensor, nn

from .heads import SingleExpertPair, config_from_dict
from .model_dirs import resolve_model_ref

__all__ = ["ExpertPart", "ExpertPartConfig"]


@dataclass
class ExpertPartConfig:
    """Which columns of which composite expert's frames the wrapped model reads, and where it lives."""

    audio_expert: str = "yamnet+aisfx"  # the composite expert the index runs
    part: str = "yamnet"  # the wrapped model's own audio expert
    start: int = 0  # its columns [start, stop) of the composite frames
    stop: int = 1024
    text_expert: str = "minilm"
    model: str = "model"  # a subfolder of this model's folder, or "shipped:<name>[/<subfolder>]"

    @classmethod
    def from_dict(cls, d: dict) -> "ExpertPartConfig":
        return config_from_dict(cls, d, "ExpertPart")


class ExpertPart(SingleExpertPair, nn.Module):
    """``inner`` over columns ``[start, stop)`` of a composite expert's frames (see module doc)."""

    model_type = "expert_part"

    def __init__(self, inner: nn.Module, config: ExpertPartConfig):
        super().__init__()
        inner_expert = getattr(getattr(inner, "config", None), "audio_expert", None)
        if inner_expert is not None and inner_expert != config.part:
            raise ValueError(f"the wrapped model reads {inner_expert!r} frames, not part {config.part!r}")
        if not 0 <= config.start < config.stop:
            raise ValueError(f"bad columns [{config.start}, {config.stop}) for part {config.part!r}")
        self.inner = inner
        self.config = config

    @classmethod
    def wrap(cls, inner: nn.Module, composite: str = "yamnet+aisfx", ref: str | None = None) -> "ExpertPart":
        """Wrap a model over one expert for the composite expert ``composite`` (its columns are
        looked up in :func:`soundseek.experts.composite.composite_parts`); ``ref``: where the
        wrapped model is shipped ("shipped:default/member0"), so that saving only references it."""
        from ..experts.composite import composite_parts

        part = inner.config.audio_expert
        parts = composite_parts(composite)
        if part not in parts:
            raise ValueError(f"composite expert {composite!r} has no part {part!r}; it has {sorted(parts)}")
        start, stop = parts[part]
        return cls(inner, ExpertPartConfig(audio_expert=composite, part=part, start=start, stop=stop,
                                           text_expert=inner.config.text_expert, model=ref or "model"))

    # -- the single-vector contract -------------------------------------------------------
    def encode_audio(self, frames: Tensor, mask: Tensor | None = None) -> Tensor:
        if frames.shape[-1] < self.config.stop:
            raise ValueError(f"audio frames have dim {frames.shape[-1]}; part {self.config.part!r} of "
                             f"{self.config.audio_expert!r} needs columns up to {self.config.stop}")
        return self.inner.encode_audio(frames[..., self.config.start:self.config.stop], mask)

    def encode_text(self, sentence: Tensor) -> Tensor:
        return self.inner.encode_text(sentence)

    def export_text_side(self):
        return self.inner.export_text_side()

    @property
    def class_vectors(self) -> Tensor:
        """The wrapped label bridge's class-name vectors (what a query gate reads)."""
        if not hasattr(self.inner, "class_vectors"):
            raise AttributeError(f"the wrapped {type(self.inner).__name__} has no class_vectors")
        return self.inner.class_vectors

    # -- persistence ----------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """``config.json``; the wrapped model too unless ``config.model`` references a shipped one."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        if not self.config.model.startswith("shipped:"):
            self.inner.save_pretrained(d / self.config.model)
        (d / "config.json").write_text(json.dumps({"model_type": self.model_type, **asdict(self.config)}, indent=2) + "\n")
        return d

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "ExpertPart":
        from .loading import load_model

        d = Path(directory)
        if not (d / "config.json").is_file():
            raise FileNotFoundError(f"{d} is not a saved ExpertPart: config.json is missing")
        raw = json.loads((d / "config.json").read_text())
        if raw.get("model_type") != cls.model_type:
            raise ValueError(f"{d} holds a {raw.get('model_type')!r} model, not an {cls.model_type!r}")
        cfg = ExpertPartConfig.from_dict(raw)
        return cls(load_model(resolve_model_ref(cfg.model, d)), cfg).eval()
