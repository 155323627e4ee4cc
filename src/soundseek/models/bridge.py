"""Label bridge: free-text search through an audio tagger's named classes, no text–audio training.

YAMNet knows 521 AudioSet classes by name; a sentence encoder (MiniLM) knows how close a query is
to each name.  The bridge (ConSE, Norouzi et al. 2014) combines the two:

* **text side**: cosine of the query's sentence vector to the class names (each embedded with a
  prompt template, e.g. "the sound of {}"), softmax with a temperature over the ``top_k``
  closest, zero elsewhere, L2-normalised;
* **audio side**: the tagger's class probabilities (sigmoid of its own classifier applied to the
  stored embeddings), averaged over the window's patches, optionally divided by a class prior
  (mean probability on a reference corpus) to the power ``prior_alpha``, L2-normalised.

The score is their dot product, so the bridge is a single-vector model: the index serves it, an
:class:`~soundseek.models.ensemble.EnsembleModel` fuses it with trained heads, and the class
names double as human-readable *tags* on every hit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .bridge_side import BridgeTextSide
from .heads import SingleExpertPair, config_from_dict, l2_normalize
from .pretrained import read_model_dir, save_model_dir


@dataclass
class LabelBridgeConfig:
    """Everything needed to rebuild a :class:`LabelBridge` (saved as ``config.json``)."""

    audio_expert: str = "yamnet"
    text_expert: str = "minilm"
    audio_dim: int = 1024
    text_dim: int = 384
    top_k: int = 10
    temperature: float = 0.1
    name_template: str = "the sound of {}"
    # how each class is put into words before embedding: "name" (the template alone) or an
    # AudioSet-ontology style of soundseek.experts.audioset.CLASS_TEXT_STYLES (build time only)
    class_text: str = "name"
    prior_alpha: float = 0.0
    prior_source: str = ""  # what the class prior was measured on (documentation only)
    class_names: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict) -> "LabelBridgeConfig":
        return config_from_dict(cls, d, "LabelBridge")


class LabelBridge(SingleExpertPair, nn.Module):
    """Single-vector text–audio model over a tagger's classes (see module docstring)."""

    model_type = "label_bridge"

    def __init__(self, config: LabelBridgeConfig, classifier_weight: Tensor, classifier_bias: Tensor,
                 class_vectors: Tensor, prior: Tensor | None = None):
        super().__init__()
        n = len(config.class_names)
        if classifier_weight.shape != (n, config.audio_dim) or classifier_bias.shape != (n,):
            raise ValueError(f"classifier must be ({n}, {config.audio_dim}) + ({n},), got "
                             f"{tuple(classifier_weight.shape)} + {tuple(classifier_bias.shape)}")
        if class_vectors.shape != (n, config.text_dim):
            raise ValueError(f"class_vectors must be ({n}, {config.text_dim}), got {tuple(class_vectors.shape)}")
        self.config = config
        self.register_buffer("classifier_weight", classifier_weight.float())
        self.register_buffer("classifier_bias", classifier_bias.float())
        self.register_buffer("class_vectors", l2_normalize(class_vectors.float()))
        self.register_buffer("prior", torch.ones(n) if prior is None else prior.float())

    # -- building ------------------------------------------------------------------------
    @classmethod
    def build(cls, audio_expert: str = "yamnet", text_expert: str = "minilm", top_k: int = 10,
              temperature: float = 0.1, name_template: str = "the sound of {}",
              prior: np.ndarray | None = None, prior_alpha: float = 0.0, prior_source: str = "",
              class_text: str = "name") -> "LabelBridge":
        """Read the tagger's classifier and names from ``audio_expert`` (it must expose
        ``class_names`` and ``classifier()``, as ``yamnet`` does) and embed the names
        (``class_text="name"``) or, for a tagger that also has AudioSet ``class_mids``, the
        ontology's words for them (``soundseek.experts.audioset.class_texts``)."""
        from ..experts import get_audio_expert, get_text_expert

        expert = get_audio_expert(audio_expert)
        if not (hasattr(expert, "class_names") and hasattr(expert, "classifier")):
            raise TypeError(f"expert {audio_expert!r} has no named classes; a label bridge needs a tagger such as yamnet")
        if "{}" not in name_template:
            raise ValueError(f"name_template {name_template!r} needs a '{{}}' placeholder for the class name")
        names = list(expert.class_names)
        w, b = expert.classifier()
        if class_text == "name":
            texts = [name_template.format(n) for n in names]
        else:
            from ..experts.audioset import class_texts

            if not hasattr(expert, "class_mids"):
                raise TypeError(f"class_text {class_text!r} needs AudioSet class ids; expert {audio_expert!r} has none")
            texts = class_texts(list(expert.class_mids), class_text, name_template)
        text = get_text_expert(text_expert)
        vecs = text.encode(texts).sentence
        cfg = LabelBridgeConfig(audio_expert=audio_expert, text_expert=text_expert, audio_dim=w.shape[1],
                                text_dim=vecs.shape[1], top_k=top_k, temperature=temperature,
                                name_template=name_template, class_text=class_text, prior_alpha=prior_alpha if prior is not None else 0.0,
                                prior_source=prior_source if prior is not None else "", class_names=names)
        return cls(cfg, torch.from_numpy(w), torch.from_numpy(b), torch.from_numpy(vecs),
                   None if prior is None else torch.as_tensor(prior, dtype=torch.float32)).eval()

    # -- the single-vector contract (expert lists and similarity: SingleExpertPair) ------------
    def class_probs(self, frames: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, T, D) embeddings + mask -> (B, C) class probabilities averaged over real frames."""
        p = torch.sigmoid(frames.float() @ self.classifier_weight.T + self.classifier_bias)
        if mask is None:
            return p.mean(1)
        m = mask.to(p.dtype).unsqueeze(-1)
        return (p * m).sum(1) / m.sum(1).clamp_min(1.0)

    def encode_audio(self, frames: Tensor, mask: Tensor | None = None) -> Tensor:
        if frames.shape[-1] != self.config.audio_dim:
            raise ValueError(f"audio frames have dim {frames.shape[-1]}, this bridge expects "
                             f"{self.config.audio_dim} ({self.config.audio_expert} features)")
        p = self.class_probs(frames, mask)
        if self.config.prior_alpha:
            p = p / self.prior.clamp_min(1e-6) ** self.config.prior_alpha
        return l2_normalize(p)

    def encode_text(self, sentence: Tensor) -> Tensor:
        if sentence.shape[-1] != self.config.text_dim:
            raise ValueError(f"sentence vectors have dim {sentence.shape[-1]}, this bridge expects "
                             f"{self.config.text_dim} ({self.config.text_expert} features)")
        return torch.from_numpy(self.export_text_side()(sentence.detach().float().cpu().numpy()))

    def export_text_side(self) -> BridgeTextSide:
        return BridgeTextSide(self.class_vectors.cpu().numpy(), self.config.top_k, self.config.temperature)

    def query_classes(self, sentence: np.ndarray, k: int = 3) -> list[list[tuple[str, float]]]:
        """The class names each query is bridged to, with their weights (best first)."""
        w = self.export_text_side()(np.asarray(sentence, dtype=np.float32))
        w = w / np.maximum(w.sum(1, keepdims=True), 1e-12)
        out = []
        for row in w:
            idx = np.argsort(-row, kind="stable")[:k]
            out.append([(self.config.class_names[i], float(row[i])) for i in idx if row[i] > 0])
        return out

    # -- persistence ---------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        return save_model_dir(self, directory, self.model_type, self.config, indent=1)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "LabelBridge":
        _, cfg, s = read_model_dir(directory, cls.model_type, "LabelBridge")
        return cls(LabelBridgeConfig.from_dict(cfg), s["classifier_weight"], s["classifier_bias"],
                   s["class_vectors"], s["prior"]).eval()
