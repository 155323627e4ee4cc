"""Installing a trained model into the package assets (train/recipes/common.py), as both recipes do."""

import json
import stat

from soundseek.models.pretrained import jsonable as json_default
from soundseek.train.recipes.common import install_model


def test_install_model_replaces_target_and_adds_recipe(tmp_path, capsys):
    src = tmp_path / "run" / "model"
    (src / "member0").mkdir(parents=True)
    (src / "config.json").write_text('{"model_type": "ensemble"}')
    (src / "member0" / "model.safetensors").write_bytes(b"w" * 10)
    (src / "curve.png").write_bytes(b"png")
    (src / "config.json").chmod(0o600)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("seed: 0\n")
    target = tmp_path / "assets" / "default"
    (target / "stale").mkdir(parents=True)

    out = install_model(src, target, recipe, {"recipe.json": {"recipe": "x", "bridge": {"top_k": 10}}})

    assert out == target
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == [
        "config.json", "member0", "member0/model.safetensors", "recipe.json", "train_config.yaml"]
    assert (target / "train_config.yaml").read_text() == "seed: 0\n"
    assert (target / "recipe.json").read_text() == json.dumps({"recipe": "x", "bridge": {"top_k": 10}}, indent=1) + "\n"
    assert stat.S_IMODE((target / "config.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((target / "member0").stat().st_mode) == 0o755
    assert f"installed model 'default' into {target}" in capsys.readouterr().out  # the recipe's own name


def test_json_default_numpy_scalars():
    import numpy as np
    import pytest

    assert json.dumps({"a": np.float32(0.5), "n": np.int64(3)}, default=json_default) == '{"a": 0.5, "n": 3}'
    with pytest.raises(TypeError):
        json.dumps({"x": object()}, default=json_default)
