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
    # `soundseek adapt`: the model adapted to this library, a folder relative to the index
    # ("adapted"); served instead of ``model`` while its adapt_report.json says kept (None: base model)
    adapted_model: str | None = None
    format_version: int = FORMAT_VERSION

    @property
    def profile_name(self) -> str | None:
        """The profile this index amounts to: the one it was created with, else the one whose
        expert and model it has ("fast" for the plain default), else None (its own choice)."""
        return self.profile or next((name for name, p in PROFILES.items()
                                     if (p["audio_expert"], p["model"]) == (self.audio_expert, self.model)), None)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "IndexConfig":
        """Read and :meth:`validate` ``index.json`` (what ``Index.open`` and ``soundseek check``
        both use: they accept exactly the same files)."""
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        known = {f for f in cls.__dataclass_fields__}
        cfg = cls(**{k: v for k, v in data.items() if k in known})
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise :class:`ConfigError` (a ValueError naming the field) when a value is out of
        range; :class:`NewerFormatError` when a newer soundseek wrote the index.  The one place
        that decides whether a configuration can be used."""
        from .vectorstores.backends import validate_store
        from .vectorstores.vectors import KINDS

        if not isinstance(self.format_version, int) or isinstance(self.format_version, bool):
            raise ConfigError(f"format_version must be an integer, not {self.format_version!r}")
        if self.format_version > FORMAT_VERSION:
            raise NewerFormatError(f"format_version {self.format_version}; this one reads format {FORMAT_VERSION}: "
                                   "upgrade soundseek")
        for name in ("window_s", "hop_s"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v < float("inf"):
                raise ConfigError(f"{name} must be a positive number of seconds, not {v!r}")
        if self.hop_s > self.window_s:
            raise ConfigError(f"hop_s ({self.hop_s}) must not exceed window_s ({self.window_s})")
        md = self.max_duration_s
        if md is not None and (not isinstance(md, (int, float)) or isinstance(md, bool) or not md > 0):
            raise ConfigError(f"max_duration_s must be a positive number of seconds or null, not {md!r}")
        if not isinstance(self.audio_expert, str) or not self.audio_expert:
            raise ConfigError(f"audio_expert must be an expert's name, not {self.audio_expert!r}")
        if self.model is not None and not isinstance(self.model, str):
            raise ConfigError(f"model must be a model spec or null, not {self.model!r}")
        am = self.adapted_model
        if am is not None and (not isinstance(am, str) or not am or Path(am).is_absolute() or ".." in Path(am).parts):
            raise ConfigError(f"adapted_model must be a folder inside the index (e.g. \"adapted\") or null, not {am!r}")
        if self.vector_index not in KINDS:
            raise ConfigError(f"vector_index: unknown index kind {self.vector_index!r}: use one of {', '.join(KINDS)}")
        try:
            validate_store(self.vector_store if isinstance(self.vector_store, str) else repr(self.vector_store))
        except ValueError as e:
            raise ConfigError(f"vector_store: {e}") from None
        for name in ("expert_options", "text_expert_options"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name} must be a JSON object")
        if self.audio_pooling not in AUDIO_POOLINGS:
            raise ConfigError(f"unknown audio_pooling {self.audio_pooling!r} (this soundseek knows "
                              f"{', '.join(AUDIO_POOLINGS)}): made by a newer soundseek?")


class UnknownItemError(KeyError):
    """No indexed file has this id (:meth:`Index.item`, :meth:`Index.similar`).  A KeyError whose
    message prints as written (a plain KeyError shows it in quotes)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(ValueError):
    """A value in ``index.json`` that this soundseek cannot use (the message names the field)."""


class NewerFormatError(ConfigError):
    """``index.json`` was written by a newer soundseek."""


@dataclass(frozen=True)
class Hit:
    """One search result (:meth:`Index.search`, :meth:`~Index.search_audio`, :meth:`~Index.similar`).

    ``id``: the file's id in the index (:meth:`Index.item`, :meth:`Index.similar`); ``path``: its
    resolved path; ``duration`` in seconds.  ``start``/``end``: the best-matching window in
    seconds, or None when the file fits in one window (the whole file matched).
    ``score``: text search, 0–1 in every mode, higher is better: content mode's is the calibrated
    probability that the file is the kind of sound asked for (0.5 at text–audio cosine 0.44),
    metadata's how much of the query the file's own words hold, hybrid's both fused
    (docs/search.md, "Scores"); audio queries and "more like this" give the raw audio–audio
    cosine (1.0: the same sound).
    ``tags``: what the window sounds like (machine tags, best first).
    ``matched``: the signals that ranked it: "content" (the sound), "name", "folder",
    "embedded" (the file's own words), "meaning", "memory", "tags" (see the comments below).
    ``words``: the query's words found in the file's name, folders or embedded tags (what
    ``snippet`` shows in [brackets]).
    ``copies``: near-identical files (another format, gain, trim, rate) shown as this one row,
    as (id, path) pairs; empty with ``group=False`` (docs/duplicates.md).
    ``available`` (a property, one ``stat`` on each access, never stored): False when the file was
    deleted or moved since indexing (what the CLI marks "(file missing)" and the API ``available``)."""

    id: int
    path: str
    score: float
    duration: float
    start: float | None = None
    end: float | None = None
    tags: tuple = ()  # what the window sounds like: experts.tagger.Tag (name, score), best first
    # which signals ranked this hit: "content" (text–audio model) and/or the metadata fields whose
    # words matched ("name", "folder", "embedded"); "meaning" when the name says what was asked in
    # other words (soundseek.index.name_match); "memory" when a file without a name sounds like named
    # files whose names say it (soundseek.index.name_memory); "tags" when a query word is a machine tag
    matched: tuple = ()
    snippet: str = ""  # the file's own words with the matched ones in [brackets]
    words: tuple = ()  # the query words found in the file's metadata
    # near-identical files collapsed into this row ((id, path), ...; soundseek.index.dupstore)
    copies: tuple = ()
    # with ``moments=N``: the file's best N windows that do not overlap, best first, as
    # (start, end, score) (the first is ``start``/``end``); empty for a file of one window
    moments: tuple = ()

    @property
    def available(self) -> bool:
        """True while the file is still on disk (one ``stat`` now: a file deleted after the search
        reads False on the next access)."""
        from ..audio.paths import on_disk  # the audio package's heavy imports stay off this module

        return on_disk(self.path)

    def to_dict(self) -> dict:
        """A JSON-ready dict (what ``soundseek search --json`` and ``--export json`` print): the
        fields above, ``available`` (checked now), ``tags`` as [{"name", "score"}], ``copies`` as
        [{"id", "path"}], and ``moments`` as [{"start", "end", "score"}] when there are some."""
        d = {k: getattr(self, k) for k in ("id", "path", "score", "duration", "start", "end")}
        d["available"] = self.available
        d["tags"] = [t.to_dict() for t in self.tags]
        d["matched"] = list(self.matched)
        d["snippet"] = self.snippet
        d["words"] = list(self.words)
        d["copies"] = [{"id": i, "path": p} for i, p in self.copies]
        if self.moments:
            d["moments"] = [{"start": a, "end": b, "score": sc} for a, b, sc in self.moments]
        return d


#: a sample rate kept only for ultrasound (bat detectors record at 192–500 kHz)
ULTRASONIC_RATE = 176_400


@dataclass
class AddReport:
    """What one :meth:`Index.add` run did: files ``added`` (new or changed), ``unchanged``
    (skipped), ``removed`` (gone from a scanned folder), ``moved`` (found under a new path), ``failed`` [(path, why)] (not indexed;
    also :meth:`Index.failures`), seconds of audio read and of the whole run, and what the
    near-duplicate update and a past ``soundseek adapt`` made of the new files.  ``to_dict()``:
    what ``soundseek index --json`` prints."""

    added: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    moved: int = 0  # indexed files found under a new path (same content, old path gone): entries kept
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    features_computed: int = 0
    duplicates: dict = field(default_factory=dict)  # what the near-duplicate update did (DupReport)
    joined_memory: int = 0  # files that joined the name memory (indexed after `soundseek adapt`)
    named_since_adapt: int = 0  # files indexed after `soundseek adapt` whose names now mean something to hybrid
    adapt_error: str = ""  # why new files could not join what `soundseek adapt` installed (the files are indexed)
    # files recorded below the audio expert's rate, (path, Hz): the model hears nothing above half their rate
    low_rate: list[tuple[str, int]] = field(default_factory=list)
    # files recorded at ULTRASONIC_RATE or more, (path, Hz): bat detectors; the model hears nothing
    # above half its own rate in them
    high_rate: list[tuple[str, int]] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["failed"] = [{"path": p, "error": e} for p, e in self.failed]
        return d
