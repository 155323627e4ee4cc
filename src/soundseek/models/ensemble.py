"""Ensembles: average the similarity matrices of several retrieval models.

Averaging scores of independently trained models is the simplest reliable gain in the papers
(Primus et al. also use the averaged matrix as estimated correspondences).  When every member is
a single-vector model (``encode_text``/``encode_audio``, L2-normalised), the average of cosines is
itself a dot product of concatenated embeddings scaled by ``1/sqrt(K)``, so an ensemble can be
served by the vector index like any single model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor, nn


class EnsembleModel(nn.Module):
    """Mean of member similarities (optionally weighted; weights are normalised to sum 1)."""

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float] | None = None,
                 gate: "QueryGate | dict | None" = None):
        """``gate``: query-adaptive weights for a label-bridge member (:mod:`soundseek.models.query_gate`);
        ``weights`` then stay the audio side's fixed scaling and the other members' proportions."""
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member model")
        self.members = nn.ModuleList(members)
        w = torch.ones(len(members)) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        if w.shape != (len(members),) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"ensemble weights must be {len(members)} non-negative numbers with a positive sum")
        self.register_buffer("weights", w / w.sum())
        from .query_gate import QueryGate

        self.gate = QueryGate.from_dict(gate) if isinstance(gate, dict) else gate
        if self.gate is not None:
            if not 0 <= self.gate.member < len(members) or not hasattr(members[self.gate.member], "class_vectors"):
                raise ValueError("the query gate's member must be a label bridge (a model with class_vectors)")
            if len(members) < 2 or bool((self.weights <= 0).any()):
                # the audio side is scaled by sqrt(fixed weight): a member at 0 could not get a share back
                raise ValueError("a query gate needs at least two members, all with a fixed weight > 0")
            if len({e for m in members for e in getattr(m, "text_experts", [])}) != 1:
                raise ValueError("a query gate needs members that read one and the same text expert")

    def query_weights(self, sentence: Tensor) -> Tensor:
        """(N, K) member weights for N queries' sentence vectors (the fixed weights without a gate)."""
        n = sentence.shape[0]
        if self.gate is None:
            return self.weights.expand(n, -1)
        cv = self.members[self.gate.member].class_vectors.detach().cpu().numpy()
        share = self.gate.bridge_share(sentence.detach().float().cpu().numpy(), cv)
        w = self.gate.member_weights(share, self.weights.cpu().numpy())
        return torch.from_numpy(w).to(self.weights.device)

    def similarity(self, text_batch, audio_batch) -> Tensor:
        sims = [m.similarity(text_batch, audio_batch) for m in self.members]
        if self.gate is None:
            return average_similarities(sims, self.weights)
        w = self.query_weights(text_batch.get(self.text_experts[0]))  # (N_text, K)
        return torch.einsum("nk,knm->nm", w.to(sims[0].dtype), torch.stack(sims))

    # ---- single-vector serving (only when every member is a single-vector model)
    def _check_single_vector(self) -> None:
        for m in self.members:
            if not (hasattr(m, "encode_text") and hasattr(m, "encode_audio")):
                raise TypeError(
                    f"member {type(m).__name__} has no encode_text/encode_audio: only ensembles of "
                    "single-vector models can be served by the vector index"
                )

    def encode_text(self, *args, **kwargs) -> Tensor:
        """Members' text vectors, each scaled by weight/sqrt(fixed weight) (audio: sqrt(fixed weight)),
        so that text · audio = the weighted mean of the members' cosines."""
        self._check_single_vector()
        if self.gate is None:
            return torch.cat([m.encode_text(*args, **kwargs) * w.sqrt() for m, w in zip(self.members, self.weights)], -1)
        if len(args) != 1 or kwargs:
            raise TypeError("a gated ensemble's encode_text takes one tensor of sentence vectors")
        (sentence,) = args
        scale = self.query_weights(sentence) / self.weights.sqrt()  # (N, K); fixed weights are > 0
        return torch.cat([m.encode_text(sentence) * scale[:, i:i + 1] for i, m in enumerate(self.members)], -1)

    def export_text_side(self):
        """Members' text sides, each scaled by sqrt(weight), concatenated (= ``encode_text``); with a
        query gate, scaled per query (:class:`~soundseek.models.text_side.GatedConcat`)."""
        from .text_side import Concat, GatedConcat

        self._check_single_vector()
        parts = []
        for m in self.members:
            if not hasattr(m, "export_text_side"):
                raise NotImplementedError(f"member {type(m).__name__} has no export_text_side")
            parts.append(m.export_text_side())
        if self.gate is not None:
            return GatedConcat(parts, [float(w) for w in self.weights], self.gate.to_dict())
        return Concat(parts, [float(w) for w in self.weights.sqrt()])

    def encode_audio(self, *args, **kwargs) -> Tensor:
        self._check_single_vector()
        return torch.cat([m.encode_audio(*args, **kwargs) * w.sqrt() for m, w in zip(self.members, self.weights)], -1)

    @property
    def audio_experts(self) -> list[str]:
        return sorted({e for m in self.members for e in getattr(m, "audio_experts", [])})

    @property
    def text_experts(self) -> list[str]:
        return sorted({e for m in self.members for e in getattr(m, "text_experts", [])})

    @property
    def config(self):
        """The first member's config (experts are shared by construction)."""
        return getattr(self.members[0], "config", None)

    def save_pretrained(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        names = []
        for i, m in enumerate(self.members):
            if not hasattr(m, "save_pretrained"):
                raise TypeError(f"member {i} ({type(m).__name__}) cannot be saved: it has no save_pretrained")
            m.save_pretrained(d / f"member{i}")
            names.append(f"member{i}")
        meta = {"model_type": "ensemble", "members": names, "weights": self.weights.tolist()}
        if self.gate is not None:
            meta["gate"] = self.gate.to_dict()
        (d / "config.json").write_text(json.dumps(meta, indent=2))
        return d

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, load: Callable[[Path], nn.Module] | None = None
    ) -> "EnsembleModel":
        """Load members with ``load(member_dir)`` (default: :func:`soundseek.models.load_model`)."""
        if load is None:
            from .loading import load_model as load
        d = Path(directory)
        meta = json.loads((d / "config.json").read_text())
        if meta.get("model_type") != "ensemble":
            raise ValueError(f"{d} does not hold a saved ensemble (config.json model_type is not 'ensemble')")
        return cls([load(d / n) for n in meta["members"]], meta["weights"], gate=meta.get("gate")).eval()


def average_similarities(matrices: Sequence[Tensor], weights: Tensor | Sequence[float] | None = None) -> Tensor:
    """Weighted mean of equally shaped ``(N_text, N_audio)`` matrices."""
    if not matrices:
        raise ValueError("nothing to average: no similarity matrices given")
    shapes = {tuple(m.shape) for m in matrices}
    if len(shapes) != 1:
        raise ValueError(f"similarity matrices differ in shape: {sorted(shapes)}")
    stack = torch.stack([torch.as_tensor(m) for m in matrices])
    if weights is None:
        return stack.mean(0)
    w = torch.as_tensor(weights, dtype=stack.dtype, device=stack.device)
    return torch.einsum("k,knm->nm", w / w.sum(), stack)


