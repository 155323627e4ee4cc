"""What the recipes that build a shipped model share: installing it into the package."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def install_model(model_dir: Path, target: Path, recipe: Path, extra_json: dict[str, dict] | None = None) -> Path:
    """Replace the shipped model at ``target`` with ``model_dir`` (a model or an ensemble folder:
    weights, config, metrics) plus ``recipe`` as ``train_config.yaml`` and ``extra_json``
    (file name -> content) as JSON files; make it world-readable and print what was installed."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(model_dir, target, ignore=shutil.ignore_patterns("*.png", "*.tmp"))
    shutil.copyfile(recipe, target / "train_config.yaml")  # relative paths: no machine paths shipped
    for name, content in (extra_json or {}).items():
        (target / name).write_text(json.dumps(content, indent=1) + "\n")
    for f in target.rglob("*"):
        f.chmod(0o755 if f.is_dir() else 0o644)
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(f"installed model {target.name!r} into {target} ({size / 1e6:.2f} MB)")
    return target


