"""The index's value types: its configuration (``index.json``), a search hit, an add report."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

FORMAT_VERSION = 1
AUDIO_POOLINGS = ("non-silent", "mean-max")

#: ``soundseek index --profile``: an audio expert and a text–audio model that belong together.
#: ``fast`` (the default): YAMNet alone.  ``quality``: YAMNet and aisfx (a sound-effects CNN) run
#: on every file (soundseek.experts.composite), and the ``quality`` model fuses the default's
#: members with heads over aisfx: better on game and foley sounds, indexing several times slower
#: (docs/training.md, *The quality profile*).
PROFILES: dict[str, dict[str, str]] = {
    "fast": {"audio_expert": "yamnet", "model": "default"},
    "quality": {"audio_expert": "yamnet+aisfx", "model": "quality"},
}


@dataclass
class IndexConfig:
    audio_expert: str = "yamnet"
    model: str | None = "default"  # text–audio model spec (soundseek.models.load_model); None = audio only
    window_s: float = 10.0
    hop_s: float = 5.0
    # "auto" (flat while small, then ivfpq), "flat", "hnsw", "sq8", "fp16", "hnswsq", "ivfpq";
    # the kind in use is recorded in each vector file (soundseek.index.vectorstores.vectors)
    vector_index: str = "flat"
    # where window vectors live: "faiss" (files here), "milvus-lite" or "milvus://HOST:PORT/NAME"
    vector_store: str = "faiss"
    max_duration_s: float = 3 * 3600.0
    expert_options: dict = field(default_factory=dict)  # e.g. {"weights": "/path/Cnn14.pth"}
    text_expert_options: dict = field(default_factory=dict)
    # pooling of a window's frames into its audio vector (query by example, "more like this"):
    # "mean-max" (indexes made before 2026-11-30) or "non-silent" (frames weighted by 1 − P(Silence)
    # where the expert has a Silence class, e.g. yamnet; the same as mean-max otherwise)
    audio_pooling: str = "mean-max"
    profile: str | None = None  # the PROFILES entry the index was created with (None: expert/model given)
    format_version: int = FORMAT_VERSION

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "IndexConfig":
        data = json.loads(path.read_text())
        known = {f for f in cls.__dataclass_fields__}
        cfg = cls(**{k: v for k, v in data.items() if k in known})
        if cfg.audio_pooling not in AUDIO_POOLINGS:
            raise ValueError(f"unknown audio_pooling {cfg.audio_pooling!r} (this soundseek knows "
                             f"{', '.join(AUDIO_POOLINGS)}): made by a newer soundseek?")
        return cfg


@dataclass(frozen=True)
class Hit:
    """One search result.  ``start``/``end``: the best-matching window in seconds, or None when
    the file fits in one window."""

    id: int
    path: str
    score: float
    duration: float
    start: float | None = None
    end: float | None = None
    tags: tuple = ()  # what the window sounds like: experts.tagger.Tag (name, score), best first
    # which signals ranked this hit: "content" (text–audio model) and/or the metadata fields whose
    # words matched ("name", "folder", "embedded"); "tags" when a query word is a machine tag
    matched: tuple = ()
    snippet: str = ""  # the file's own words with the matched ones in [brackets]
    words: tuple = ()  # the query words found in the file's metadata

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("id", "path", "score", "duration", "start", "end")}
        d["tags"] = [t.to_dict() for t in self.tags]
        d["matched"] = list(self.matched)
        d["snippet"] = self.snippet
        d["words"] = list(self.words)
        return d


@dataclass
class AddReport:
    added: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    features_computed: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["failed"] = [{"path": p, "error": e} for p, e in self.failed]
        return d
