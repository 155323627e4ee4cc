"""`soundseek evaluate`: run the protocols on one model, write results JSON + Markdown + config.

Protocols (each skipped with a reason when its data is not found):

* ``sfx``       -- the sfx-corpus test split (captions CSV of the default model's recipe), t2a/a2t.
* ``esc50``     -- ESC-50 folder: zero-shot classification + class-query retrieval.
* ``clotho``    -- a Clotho evaluation folder (``clotho_captions_evaluation.csv`` + ``evaluation/``).
* ``audiocaps`` -- an AudioCaps test folder (``test.csv`` + ``test/``).
* ``sounddescs`` -- a SoundDescs folder (``test_list.txt``, ``BBCSoundEffects.csv``, ``audio/``): the
  benchmark's test split, each described id's archive description as its one caption (ids
  without a description are left out and counted, as the loader says).
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ..data.types import AudioCaptions
from . import protocols as P

ALL_PROTOCOLS = ("sfx", "esc50", "clotho", "audiocaps", "sounddescs")
# sub-folders looked up under ``data_root`` (the layout of the project's shared data folder)
DEFAULT_DIRS = {
    "sfx": "sfx-corpus",
    "esc50": "esc50-fold1",
    "clotho": "clotho-mini",
    "audiocaps": "audiocaps-mini",
    "sounddescs": "sounddescs",
}


@dataclass
class EvalConfig:
    """What `soundseek evaluate` runs; saved as ``config.json`` next to the results."""

    model: str = "default"
    protocols: list[str] = field(default_factory=lambda: list(ALL_PROTOCOLS))
    templates: list[str] = field(default_factory=lambda: list(P.DEFAULT_TEMPLATES))
    output_dir: str | None = None  # None: runs/eval/<UTC timestamp>
    data_root: str | None = None  # None: $SOUNDSEEK_DATA; holds the DEFAULT_DIRS sub-folders
    sfx_csv: str | None = None  # None: the recipe's captions.csv shipped in the package
    sfx_root: str | None = None
    sfx_split: str = "test"
    esc50_dir: str | None = None
    clotho_dir: str | None = None
    audiocaps_dir: str | None = None
    sounddescs_dir: str | None = None
    n_random_runs: int = 20
    seed: int = 0
    batch_size: int = 64
    feature_cache: str | None = None  # feature store root; None: the store's default
    progress: bool = True
    strict: bool = False  # a missing or undecodable clip fails the run instead of being left out

    def __post_init__(self) -> None:
        unknown = [p for p in self.protocols if p not in ALL_PROTOCOLS]
        if unknown:
            raise ValueError(f"unknown protocol(s) {unknown}; choose from {list(ALL_PROTOCOLS)}")
        if self.n_random_runs < 1:
            raise ValueError("n_random_runs must be >= 1")
        for t in self.templates or ():  # before any feature is computed
            P.check_template(t)

    @classmethod
    def from_dict(cls, d: dict) -> "EvalConfig":
        """Config from a mapping, e.g. a saved ``config.json`` (its ``recorded`` block, what the run
        found out, is not a setting and is ignored)."""
        d = {k: v for k, v in d.items() if k != RECORDED}
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"unknown evaluate config keys {bad}; known: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)

    def dataset_dir(self, protocol: str) -> Path | None:
        explicit = {"sfx": self.sfx_root, "esc50": self.esc50_dir, "clotho": self.clotho_dir,
                    "audiocaps": self.audiocaps_dir, "sounddescs": self.sounddescs_dir}[protocol]  # fmt: skip
        if explicit:
            return Path(explicit).expanduser()
        root = self.data_root or os.environ.get("SOUNDSEEK_DATA")
        if root:
            return Path(root).expanduser() / DEFAULT_DIRS[protocol]
        return None


#: Key of the block that config.json and results.json add to the settings: what the run used
#: (soundseek version, the model's folder and weights fingerprint, the feature cache).
RECORDED = "recorded"


class DataNotFound(FileNotFoundError):
    """A protocol's data is not there: the protocol is skipped with this message."""


# --------------------------------------------------------------------------------------
# data for each protocol (through the soundseek.data loaders)


def _need_dir(cfg: EvalConfig, protocol: str, flag: str) -> Path:
    d = cfg.dataset_dir(protocol)
    field_name = "sfx_root" if protocol == "sfx" else f"{protocol}_dir"  # in Python: the EvalConfig field
    if d is None:
        raise DataNotFound(f"no data folder for {protocol!r}: pass {flag} PATH or --data-root (EvalConfig."
                           f"{field_name} / data_root in Python; or set SOUNDSEEK_DATA)")
    if not d.is_dir():
        where = "" if d.is_absolute() else f" (a relative path is taken from {Path.cwd()})"
        raise DataNotFound(f"{protocol}: folder {d} does not exist{where}; pass {flag} PATH (EvalConfig.{field_name})")
    return d


def _data_module(name: str):
    """A ``soundseek.data`` loader module; missing -> the protocol is skipped with the reason."""
    try:
        return importlib.import_module(f"soundseek.data.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"soundseek.data.{name}":
            raise
        raise DataNotFound(f"the loader soundseek.data.{name} is not installed") from None


def sfx_items(cfg: EvalConfig) -> list[AudioCaptions]:
    root = _need_dir(cfg, "sfx", "--sfx-root")
    sfx_corpus = _data_module("sfx_corpus")
    kwargs: dict[str, Any] = {"audio_root": root}
    if cfg.sfx_csv:
        kwargs["csv_path"] = Path(cfg.sfx_csv).expanduser()
    items = sfx_corpus.load_sfx_corpus(**kwargs)
    items = [it for it in items if it.split == cfg.sfx_split]
    if not items:
        raise DataNotFound(f"sfx-corpus captions have no {cfg.sfx_split!r} split")
    return items


def clotho_items(cfg: EvalConfig) -> list[AudioCaptions]:
    root = _need_dir(cfg, "clotho", "--clotho")
    clotho = _data_module("clotho")
    return clotho.load_clotho(root, split="evaluation")


def audiocaps_items(cfg: EvalConfig) -> list[AudioCaptions]:
    root = _need_dir(cfg, "audiocaps", "--audiocaps")
    audiocaps = _data_module("audiocaps")
    return audiocaps.load_audiocaps(root, split="test")


def sounddescs_items(cfg: EvalConfig) -> list[AudioCaptions]:
    root = _need_dir(cfg, "sounddescs", "--sounddescs")
    sounddescs = _data_module("sounddescs")
    try:
        items = sounddescs.load_sounddescs(root, split="test")
    except FileNotFoundError as e:  # no split list or descriptions: the layout, not a traceback
        raise DataNotFound(str(e)) from None
    if items and not any_audio(items):
        raise DataNotFound(f"sounddescs: none of the {len(items)} described test clips is in {root}/audio "
                           "(the BBC audio is downloaded by hand: soundseek data download sounddescs says how)")
    return items


def any_audio(items: list[AudioCaptions]) -> bool:
    """Whether any clip's audio file is there (a caption file without its audio is data not found)."""
    return any(Path(it.audio_path).is_file() for it in items)


CAPTION_LOADERS: dict[str, tuple[str, Callable[[EvalConfig], list[AudioCaptions]]]] = {
    "sfx": ("sfx-corpus test", sfx_items),
    "clotho": ("Clotho evaluation", clotho_items),
    "audiocaps": ("AudioCaps test", audiocaps_items),
    "sounddescs": ("SoundDescs test", sounddescs_items),
}


# --------------------------------------------------------------------------------------
# running


@dataclass
class EvalRun:
    config: EvalConfig
    results: dict[str, Any]  # protocol -> CaptionRetrievalResult | ClassEvalResult
    skipped: dict[str, str]  # protocol -> reason
    timings_s: dict[str, float]
    output_dir: Path | None = None
    started: str = ""
    model_config: dict = field(default_factory=dict)
    recorded: dict = field(default_factory=dict)  # see RECORDED

    def to_dict(self) -> dict:
        return {
            "model": self.config.model,
            "model_config": self.model_config,
            RECORDED: self.recorded,
            "started_utc": self.started,
            "machine": machine_description(),
            "results": {k: v.to_dict() for k, v in self.results.items()},
            "skipped": self.skipped,
            "timings_s": self.timings_s,
        }

    def to_markdown(self) -> str:
        lines = [
            f"# Evaluation of `{self.config.model}`",
            "",
            f"{self.started} UTC, {machine_description()}. Recalls, accuracies and mAP in percent; "
            "ranks 1-based; ties broken by lower index. `random`: the same metrics for random rankings "
            f"(mean of {self.config.n_random_runs} seeded runs, seed {self.config.seed}).",
            "",
        ]
        for name, res in self.results.items():
            lines += [res.to_markdown(), f"_{self.timings_s.get(name, 0.0):.1f} s_", ""]
        for name, why in self.skipped.items():
            lines.append(f"- skipped `{name}`: {why}")
        return "\n".join(lines).rstrip() + "\n"


def machine_description() -> str:
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores"


def default_output_dir() -> Path:
    """``runs/eval/<UTC time>`` (``-2``, ``-3``... appended when that folder exists already)."""
    base = Path("runs") / "eval" / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def soundseek_version() -> str:
    """The installed soundseek's version (package metadata; else the loaded package's ``__version__``)."""
    import sys
    from importlib import metadata

    try:
        return metadata.version("soundseek")
    except metadata.PackageNotFoundError:
        return str(getattr(sys.modules.get("soundseek"), "__version__", "unknown"))


def run_record(cfg: EvalConfig, model: Any) -> dict:
    """What a result needs to be reproduced: soundseek version, the model spec's folder and weights
    fingerprint (:func:`soundseek.models.weights_fingerprint`), the feature cache actually used."""
    from ..features import default_cache_dir
    from ..models import model_dir_for, weights_fingerprint

    model_dir = model_dir_for(cfg.model)
    cache = Path(cfg.feature_cache).expanduser() if cfg.feature_cache else default_cache_dir() / "features"
    return {
        "soundseek_version": soundseek_version(),
        "model_dir": str(model_dir.resolve()) if model_dir else None,
        "model_fingerprint": weights_fingerprint(model),
        "feature_cache": str(cache.resolve()),
    }


def make_embedder(cfg: EvalConfig, model: Any = None) -> P.ModelEmbedder:
    if model is None:
        from ..models import load_model

        model = load_model(cfg.model)
    store = None
    if cfg.feature_cache:
        from ..features import FeatureStore

        store = FeatureStore(cfg.feature_cache)
    return P.ModelEmbedder(model, store=store, batch_size=cfg.batch_size, progress=cfg.progress)


class IncompleteDataError(ValueError):
    """``strict``: a protocol's clips are not all there (missing or undecodable)."""


#: the settings that name a file or folder (made absolute in a saved config.json)
PATH_KEYS = ("model", "data_root", "sfx_root", "sfx_csv", "esc50_dir", "clotho_dir", "audiocaps_dir",
             "sounddescs_dir", "feature_cache")


def absolute_paths(d: dict) -> dict:
    """A config dict whose model folder, data folders, captions file and feature cache are
    absolute, so that ``--config`` of the saved ``config.json`` runs the same from any working
    folder (a shipped model's name stays); the data root taken from ``$SOUNDSEEK_DATA`` is written
    in, so the saved run names the data it used."""
    from ..models.model_dirs import SHIPPED_MODELS

    out = dict(d)
    if not out.get("data_root") and os.environ.get("SOUNDSEEK_DATA"):
        out["data_root"] = os.environ["SOUNDSEEK_DATA"]
    for key in PATH_KEYS:
        v = out.get(key)
        if isinstance(v, str) and v and v not in SHIPPED_MODELS and Path(v).expanduser().exists():
            out[key] = str(Path(v).expanduser().resolve())
    return out


def run_evaluation(
    cfg: EvalConfig,
    embedder: P.ModelEmbedder | None = None,
    write: bool = True,
    log: Callable[[str], None] = print,
) -> EvalRun:
    """Run ``cfg.protocols``; with ``write`` save config.json, results.json, results.md (not when no
    protocol could run: ``run.skipped`` says why, ``run.output_dir`` stays None)."""
    embedder = embedder or make_embedder(cfg)
    run = EvalRun(cfg, {}, {}, {}, started=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"))
    model_cfg = getattr(embedder.model, "config", None)
    if is_dataclass(model_cfg) and not isinstance(model_cfg, type):
        run.model_config = asdict(model_cfg)
    run.recorded = run_record(cfg, embedder.model)
    for proto in cfg.protocols:
        t0 = time.perf_counter()
        try:
            if proto == "esc50":
                root = _need_dir(cfg, "esc50", "--esc50")
                items, classes = P.load_esc50(root)
                res = P.evaluate_classes(
                    embedder, items, classes, f"ESC-50 ({root.name})", cfg.templates, cfg.n_random_runs, cfg.seed
                )
            else:
                title, loader = CAPTION_LOADERS[proto]
                items = loader(cfg)
                if items and not any_audio(items):  # the captions file without its audio
                    raise DataNotFound(f"{proto}: none of the {len(items)} clips its captions name has its audio "
                                       f"file (first: {items[0].audio_path})")
                res = P.evaluate_caption_retrieval(embedder, items, title, cfg.n_random_runs, cfg.seed)
        except FileNotFoundError as e:  # DataNotFound, or a loader that found no captions file
            run.skipped[proto] = str(e)
            log(f"skipped {proto}: {e}")
            continue
        except P.NothingEmbeddedError as e:  # every clip is there, none could be decoded
            if cfg.strict:
                raise IncompleteDataError(f"{e}; --strict asks for every clip") from None
            run.skipped[proto] = str(e)
            log(f"skipped {proto}: {e}")
            continue
        if cfg.strict and res.failed:
            path, why = res.failed[0]
            raise IncompleteDataError(f"{proto}: {len(res.failed)} clip(s) missing or undecodable (first: {path}: "
                                      f"{why}); --strict asks for every clip (without it they are left out and "
                                      "counted in the results)")
        run.results[proto] = res
        run.timings_s[proto] = round(time.perf_counter() - t0, 2)
        log(f"{proto}: done in {run.timings_s[proto]:.1f} s")
    if write and run.results:  # nothing ran: no folder of empty results (run.skipped says why)
        out = Path(cfg.output_dir) if cfg.output_dir else default_output_dir()
        out.mkdir(parents=True, exist_ok=True)
        saved = {**absolute_paths(cfg.to_dict()), "output_dir": str(out.resolve()), RECORDED: run.recorded}
        (out / "config.json").write_text(json.dumps(saved, indent=2) + "\n")
        (out / "results.json").write_text(json.dumps(run.to_dict(), indent=2) + "\n")
        (out / "results.md").write_text(run.to_markdown())
        run.output_dir = out
    return run
