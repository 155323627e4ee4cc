"""The on-disk layout of the single-vector models: ``config.json`` + ``model.safetensors``.

``config.json`` holds ``{"model_type": ..., **asdict(config)}``; ``model.safetensors`` holds the
module's state dict with ``{"model_type": ...}`` as safetensors metadata.  :func:`save_model_dir`
and :func:`read_model_dir` write and read that pair for every model class that uses it, so the
files stay the same whichever model wrote them.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def jsonable(x):
    """``json.dumps(default=...)`` for what metrics and configs hold besides JSON types:
    numpy scalars and paths."""
    import numpy as np

    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def save_model_dir(module, directory: str | Path, model_type: str, config, indent: int = 2) -> Path:
    """Write ``module``'s weights and its dataclass ``config`` into ``directory`` (created);
    ``indent`` is the JSON indent of ``config.json``.  Returns the directory."""
    from safetensors.torch import save_file

    from ..features.store import share_like_other_files

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(out / WEIGHTS_FILE), metadata={"model_type": model_type})
    share_like_other_files(out / WEIGHTS_FILE)  # safetensors writes 0o600
    cfg = {"model_type": model_type, **asdict(config)}
    (out / CONFIG_FILE).write_text(json.dumps(cfg, indent=indent) + "\n")
    return out


def read_model_dir(directory: str | Path, model_type: str, what: str,
                    default_type: str | None = None) -> tuple[Path, dict, dict]:
    """``(directory, config dict, state dict)`` of a model saved by :func:`save_model_dir`.

    Raises FileNotFoundError (naming ``what``, e.g. ``"DualEncoder"``) when a file is missing and
    ValueError when the saved ``model_type`` is not ``model_type``; a config without a
    ``model_type`` counts as ``default_type`` (None: refused).
    """
    from safetensors.torch import load_file

    d = Path(directory)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (d / name).is_file():
            raise FileNotFoundError(f"{d} is not a saved {what}: {name} is missing")
    cfg = json.loads((d / CONFIG_FILE).read_text())
    if cfg.get("model_type", default_type) != model_type:
        raise ValueError(f"{d} holds a {cfg.get('model_type')!r} model, not a {model_type!r}")
    return d, cfg, load_file(str(d / WEIGHTS_FILE))
