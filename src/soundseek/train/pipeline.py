"""From a training YAML to a saved checkpoint: load captions, cache features, train, save."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .config import TrainConfig, check_ranges
from .data import FeatureSet, build_feature_set
from .trainer import TrainResult, build_model, needs_tokens, required_experts, save_run, train_model


@dataclass
class PreparedData:
    train: FeatureSet
    val: FeatureSet
    failed: list[tuple[str, str]]
    counts: dict


def shipped_corpus_paths() -> tuple[Path, Path]:
    """(captions CSV shipped in the package, where the recipes expect the sfx-corpus audio): the
    corpus lives in ``shared/data/sfx-corpus`` next to the repository checkout (the recipes'
    ``audio_root: ../../../../../shared/data/sfx-corpus`` is relative to their folder)."""
    from .. import data

    pkg = Path(data.__file__).resolve().parent
    return pkg / "recipes" / "sfx_corpus" / "captions.csv", pkg.parents[3] / "shared" / "data" / "sfx-corpus"


def _data_hint() -> str:
    csv, audio = shipped_corpus_paths()
    return (
        f"set data.captions_csv and data.audio_root in the recipe (relative paths are relative to the YAML "
        f"file). The sfx-corpus captions ship at {csv}; the shipped recipes expect its audio at {audio} "
        "(shared/data/sfx-corpus next to the repository checkout)"
    )


def load_items(cfg: TrainConfig) -> list:
    """The CSV's rows as ``AudioCaptions`` (``soundseek.data.captions_csv.load_caption_csv``)."""
    from ..data.captions_csv import load_caption_csv

    if not cfg.data.captions_csv:
        hint = ""
        if cfg.name in ("everyday-heads", "quality-aisfx-heads"):  # data filled in by their recipe modules
            module = "everyday" if cfg.name.startswith("everyday") else "quality"
            hint = f" (this recipe is run by `python -m soundseek.train.recipes.{module}`, which sets its data)"
        raise ValueError(f"data.captions_csv is empty{hint}: {_data_hint()}")
    csv = Path(cfg.data.captions_csv).expanduser()
    if not csv.is_file():
        raise FileNotFoundError(f"data.captions_csv: {csv} does not exist; {_data_hint()}")
    if cfg.data.audio_root and not Path(cfg.data.audio_root).expanduser().is_dir():
        raise FileNotFoundError(f"data.audio_root: {cfg.data.audio_root} does not exist; {_data_hint()}")
    return load_caption_csv(csv, audio_root=cfg.data.audio_root)


def split_items(items: list, cfg: TrainConfig) -> tuple[list, list]:
    """(train, val) rows.  Without rows in ``val_split``, a deterministic ``val_fraction`` of the
    training files (by a hash of the file name, so segments of one file stay together) is held out."""
    train = [it for it in items if it.split == cfg.data.train_split]
    val = [it for it in items if it.split == cfg.data.val_split]
    if not train:
        splits = sorted({it.split for it in items})
        raise ValueError(f"no rows in split {cfg.data.train_split!r}; the CSV has splits {splits}")
    if not val:
        def held_out(it) -> bool:
            h = hashlib.sha1(Path(it.audio_path).name.encode()).digest()
            return int.from_bytes(h[:4], "big") / 2**32 < cfg.data.val_fraction

        val = [it for it in train if held_out(it)]
        train = [it for it in train if not held_out(it)]
        if not val or not train:
            raise ValueError("too few rows to hold out a validation set; add a 'val' split to the CSV")
    return train, val


def prepare_data(cfg: TrainConfig, model=None, store=None, progress: bool = True) -> PreparedData:
    """Cached features of the train and val splits for the experts ``model`` consumes."""
    model = model if model is not None else build_model(cfg)
    audio, text = required_experts(model)
    with_tokens = needs_tokens(model)
    train_items, val_items = split_items(load_items(cfg), cfg)
    kw = dict(with_tokens=with_tokens, store=store, progress=progress)
    train, f1 = build_feature_set(
        train_items, audio, text, label_as_caption=cfg.data.label_as_caption,
        label_templates=cfg.data.label_templates, **kw,
    )  # fmt: skip
    val, f2 = build_feature_set(val_items, audio, text, **kw)  # validation: real captions only
    counts = {
        "train_clips": train.n_clips,
        "train_captions": train.n_captions,
        "val_clips": val.n_clips,
        "val_captions": val.n_captions,
        "failed_files": len(f1) + len(f2),
    }
    return PreparedData(train, val, f1 + f2, counts)


def run_training(
    cfg: TrainConfig,
    out_dir: str | Path | None = None,
    store=None,
    progress: bool = True,
    data: PreparedData | None = None,
) -> TrainResult:
    """Train as ``cfg`` says and save everything under ``out_dir`` (default ``cfg.out_dir``)."""
    check_ranges(cfg)  # before the features are computed: a fresh model trained 0 epochs is none
    model = build_model(cfg)
    data = data or prepare_data(cfg, model, store=store, progress=progress)
    result = train_model(cfg, data.train, data.val, model=model, progress=progress)
    result.extra = {"data": data.counts, "failed": [f"{p}: {e}" for p, e in data.failed]}
    save_run(result, cfg, out_dir or cfg.out_dir)
    return result
