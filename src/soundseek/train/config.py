"""Typed training configuration, loaded from and saved to YAML.

One YAML file describes a whole run (data, model, loss, optimiser, augmentation), and the same
file is saved next to every checkpoint so a run can be reproduced from its output folder.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml


@dataclass
class DataConfig:
    """Where the captions and audio come from."""

    captions_csv: str = ""  # file,caption_1..N[,split,label,start_s,end_s]; relative paths: to this YAML
    audio_root: str | None = None  # folder the CSV's `file` column is relative to (default: the CSV's folder)
    train_split: str = "train"
    val_split: str = "val"
    val_fraction: float = 0.1  # used only when the CSV has no rows in `val_split`
    label_as_caption: bool = False  # add the short class label (e.g. "dog barking") as extra caption(s)
    label_templates: list = field(default_factory=lambda: ["{label}"])  # one extra caption per template
    captions_per_clip: str = "sample"  # "sample": one random caption per clip per batch; "all": every caption
    label_positives: bool = False  # clips sharing a class label are not negatives of each other
    max_frames: int | None = 64  # random crop of longer clips in training (similarity_matrix: whole clips)


@dataclass
class ModelSpec:
    """Which model to train: ``type`` names a class in soundseek.models.registry.MODEL_TYPES, ``params`` its config."""

    type: str = "dual_encoder"
    params: dict = field(default_factory=dict)


@dataclass
class LossConfig:
    """Contrastive loss from :mod:`soundseek.losses` (captions of the same clip are never negatives)."""

    name: str = "ntxent"  # "max_margin" | "ntxent" (alias "nt_xent")
    margin: float = 0.2  # max_margin
    temperature: float = 0.07  # ntxent (also the student temperature of the distillation term)
    learnable_temperature: bool = False  # ntxent: train log(tau) with the model
    # distillation (Primus et al.): with soft targets passed to train_model, the loss is
    # distill_weight * distillation + (1 - distill_weight) * the contrastive loss above
    distill_weight: float = 0.0
    distill_temperature: float = 0.07  # softmax temperature that turns target scores into soft targets


@dataclass
class OptimConfig:
    name: str = "adam"  # "adam" | "adamw" | "radam_lookahead" (RAdam wrapped in Lookahead, Koepke et al.)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # "cosine" | "step" | "exp" | "constant" (all after linear warm-up)
    warmup_epochs: float = 1.0
    step_epochs: int = 10  # step decay: every this many epochs...
    step_gamma: float = 0.5  # ...multiply the lr by this ("exp": by this after every epoch)
    grad_clip: float | None = 2.0
    lookahead_k: int = 5  # radam_lookahead: sync slow weights every k steps...
    lookahead_alpha: float = 0.5  # ...moving them this far towards the fast ones


@dataclass
class AugmentConfig:
    """Feature-level SpecAugment-like masking, applied to training batches only."""

    time_mask_prob: float = 0.0  # probability that a clip gets one masked time span
    time_mask_max: float = 0.2  # ...of at most this fraction of its frames (at least one frame stays)
    feature_mask_prob: float = 0.0  # probability that a clip gets one zeroed band of feature dims
    feature_mask_max: float = 0.1  # ...of at most this fraction of the dims
    text_noise: float = 0.0  # std of Gaussian noise added to sentence vectors (relative to their RMS)


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSpec = field(default_factory=ModelSpec)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    epochs: int = 30
    batch_size: int = 128
    seed: int = 0
    patience: int | None = 8  # early stopping: epochs without a better validation score
    num_threads: int = 1
    out_dir: str = "runs/default"
    name: str = ""

    # -- YAML -------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Config from a mapping: unknown keys, wrong types and unknown choices (see :data:`CHOICES`)
        are errors naming the key path (``optim.lr must be a number, got 'fast'``)."""
        cfg = build_dataclass(cls, d or {}, "")
        check_choices(cfg)
        check_ranges(cfg)
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training config {path} does not exist")
        cfg = cls.from_dict(yaml.safe_load(path.read_text()) or {})
        # relative data paths are relative to the YAML file, so recipes work from any folder
        for attr in ("captions_csv", "audio_root"):
            value = getattr(cfg.data, attr)
            if value and not Path(value).expanduser().is_absolute():
                setattr(cfg.data, attr, str((path.parent / value).resolve()))
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text


# flat names accepted by :func:`apply_overrides` (the experiment runner's ``fit:`` / ``stage2:`` keys)
FLAT_KEYS = {
    "optimizer": "optim.name", "lr": "optim.lr", "weight_decay": "optim.weight_decay",
    "schedule": "optim.schedule", "warmup_epochs": "optim.warmup_epochs", "gamma": "optim.step_gamma",
    "step_epochs": "optim.step_epochs", "grad_clip": "optim.grad_clip",
    "loss": "loss.name", "margin": "loss.margin", "temperature": "loss.temperature",
    "distill_weight": "loss.distill_weight", "distill_temperature": "loss.distill_temperature",
    "max_frames": "data.max_frames", "captions_per_clip": "data.captions_per_clip",
}  # fmt: skip


def apply_overrides(cfg: TrainConfig, overrides: dict | None, where: str = "overrides") -> TrainConfig:
    """Set fields of ``cfg`` in place from ``{key: value}`` and return it.

    A key is a top-level field (``epochs``), a dotted path (``optim.lr``), a section with a
    mapping (``optim: {lr: 0.01}``) or one of the flat names of :data:`FLAT_KEYS` (``lr``,
    ``gamma``, ``loss``, ``distill_weight``, ...).  Values are type-checked like the YAML.
    """
    for key, value in (overrides or {}).items():
        path = (FLAT_KEYS.get(key, key) if isinstance(cfg, TrainConfig) else key).split(".")
        obj = cfg
        for part in path[:-1]:
            if not dataclasses.is_dataclass(obj) or not hasattr(obj, part):
                raise ValueError(f"unknown key {key!r} in {where}")
            obj = getattr(obj, part)
        last = path[-1]
        known = {f.name for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else set()
        if last not in known:
            flat = sorted(FLAT_KEYS)
            raise ValueError(f"unknown key {key!r} in {where}; known: {sorted(known)} or flat names {flat}")
        tp = typing.get_type_hints(type(obj))[last]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise TypeError(f"{where}.{key} must be a mapping")
            apply_overrides(getattr(obj, last), value, f"{where}.{key}")
        else:
            setattr(obj, last, _coerce(value, tp, f"{where}.{key}"))
    return cfg


def build_dataclass(cls, d: dict, where: str):
    """Dataclass from a dict, recursively, rejecting unknown keys with the list of known ones.

    Public so that other configs (e.g. :class:`soundseek.train.experiment.ExperimentConfig`) parse
    their YAML with the same checks; ``where`` names the place in error messages (the key path
    of this mapping: ``""`` for the top level, ``"optim"`` for a section)."""
    if not isinstance(d, dict):
        raise TypeError(f"{where or 'the config'} must be a mapping, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where or 'the config'}; known: {sorted(known)}")
    kwargs = {}
    for name, value in d.items():
        tp = hints[name]
        path = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(tp):
            kwargs[name] = build_dataclass(tp, value or {}, path)
        else:
            kwargs[name] = _coerce(value, tp, path)
    return cls(**kwargs)


#: Fields that take one of a few names: checked when a config is loaded, before any work.
CHOICES = {
    "data.captions_per_clip": ("sample", "all"),
    "loss.name": ("ntxent", "nt_xent", "max_margin"),
    "optim.name": ("adam", "adamw", "radam_lookahead"),
    "optim.schedule": ("cosine", "step", "exp", "constant"),
}


#: the least each numeric setting can be (``batch_size: -1`` trained on NaN losses and exited 0;
#: ``--epochs 0`` saved an untrained model with a val score of -inf); ``optim.lr`` must be above 0
MINIMUMS = {"epochs": 1, "batch_size": 2, "num_threads": 1, "patience": 1, "optim.step_epochs": 1}


def check_ranges(cfg: TrainConfig) -> None:
    """ValueError naming the key when a numeric setting is out of range (:data:`MINIMUMS`): on
    loading, and again before ``soundseek train`` / :func:`~soundseek.train.pipeline.run_training`
    (which build a fresh model) for configs changed after loading (``--epochs``).  The experiment
    runner's ``fit: {epochs: 0}`` (a pre-trained checkpoint scored as it is) is not refused."""
    for path, least in MINIMUMS.items():
        obj, name = cfg, path
        if "." in path:
            section, name = path.split(".")
            obj = getattr(cfg, section)
        value = getattr(obj, name, None)
        if value is not None and isinstance(value, (int, float)) and value < least:
            why = " (a contrastive batch needs two pairs at least)" if name == "batch_size" else ""
            raise ValueError(f"{path} must be at least {least}{why}; got {value!r}")
    if not cfg.optim.lr > 0:
        raise ValueError(f"optim.lr must be above 0; got {cfg.optim.lr!r}")


def check_choices(cfg: TrainConfig) -> None:
    """ValueError naming the key and the valid values when a field of :data:`CHOICES` has another value."""
    for path, valid in CHOICES.items():
        section, name = path.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in valid:
            raise ValueError(f"{path} must be one of {', '.join(valid)}; got {value!r}")


def _coerce(value, tp, where: str):
    """Light type check: YAML gives ints where floats are meant; anything else wrong is an error."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        tp = next(a for a in args if a is not type(None))
        origin = typing.get_origin(tp)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads `1e-3` (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise TypeError(f"{where} must be a number, got {value!r}")
    check = origin or tp
    if check in (int, str, bool, dict, list) and not isinstance(value, check):
        raise TypeError(f"{where} must be {check.__name__}, got {value!r}")
    if check is int and isinstance(value, bool):
        raise TypeError(f"{where} must be int, got {value!r}")
    return value
