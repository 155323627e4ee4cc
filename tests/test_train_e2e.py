"""End to end on real audio: `soundseek train` on a tiny CSV of corpus files, and the shipped
default model on the corpus test split (skipped when ../shared or the model is absent)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CORPUS = SHARED / "data" / "sfx-corpus"

pytestmark = pytest.mark.skipif(not (CORPUS / "manifest.csv").is_file(), reason="../shared/data/sfx-corpus absent")

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private feature cache, so the tests neither depend on nor pollute the user's."""
    return tmp_path_factory.mktemp("cache")


def _tiny_csv(path: Path) -> None:
    """24 short corpus files captioned from their file names (enough to exercise the pipeline)."""
    rows = list(csv.DictReader((CORPUS / "manifest.csv").open()))
    picked = [r for r in rows if r["duration_s"] and 0.5 < float(r["duration_s"]) < 4][::40][:24]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "split", "label", "caption_1", "caption_2"])
        for i, r in enumerate(picked):
            words = " ".join(re.findall(r"[a-z]+", Path(r["file"]).stem.lower())) or "sound"
            split = "val" if i % 4 == 0 else "train"
            w.writerow([r["file"], split, words, f"a sound of {words} is heard", f"someone records {words} nearby"])


def test_cli_train_writes_a_loadable_checkpoint(tmp_path, cache, monkeypatch):
    typer = pytest.importorskip("typer")
    from typer.testing import CliRunner

    from soundseek.models import DualEncoder, load_model
    from soundseek.train.cli import register

    monkeypatch.setenv("SOUNDSEEK_CACHE", str(cache))
    _tiny_csv(tmp_path / "caps.csv")
    (tmp_path / "r.yaml").write_text(
        f"data:\n  captions_csv: caps.csv\n  audio_root: {CORPUS}\n"
        "model:\n  params: {embed_dim: 32, hidden: 64}\n"
        "epochs: 3\nbatch_size: 8\n"
    )
    app = typer.Typer()
    register(app)

    @app.command("noop")  # a second command keeps typer from collapsing the app into `train`
    def _noop() -> None:
        pass

    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", str(tmp_path / "r.yaml"), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert f"checkpoint: {out / 'model'}" in res.output
    model = load_model(out / "model")
    assert isinstance(model, DualEncoder) and model.config.embed_dim == 32
    assert (out / "curve.png").is_file() and (out / "train_config.yaml").is_file()

    bad = CliRunner().invoke(app, ["train", str(tmp_path / "missing.yaml")])
    assert bad.exit_code == 2 and "does not exist" in bad.output
    # an override out of range stops before any feature is read (was: exit 0, an untrained model)
    zero = CliRunner().invoke(app, ["train", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "z"), "--epochs", "0"])
    assert zero.exit_code == 2 and "epochs must be at least 1" in zero.output and not (tmp_path / "z").exists()


@pytest.mark.parametrize("name", ["default", "aisfx-minilm-v1"])
def test_shipped_default_model_ranks_corpus_test_captions(cache, monkeypatch, name):
    """Both shipped models rank held-out corpus captions far above chance."""
    from soundseek import models

    if not (models.shipped_model_dir(name) / "config.json").is_file():
        pytest.skip(f"shipped model {name} not trained yet")
    from soundseek.data.sfx_corpus import load_sfx_corpus
    from soundseek.eval.metrics import t2a_metrics
    from soundseek.train.data import build_feature_set
    from soundseek.train.trainer import similarity_matrix

    monkeypatch.setenv("SOUNDSEEK_CACHE", str(cache))
    items = [it for it in load_sfx_corpus(CORPUS) if it.split == "test"]
    # one row per file (long ambiences have several windows), 60 files: quick to embed
    seen, subset = set(), []
    for it in items:
        if it.audio_path not in seen:
            seen.add(it.audio_path)
            subset.append(it)
    subset = subset[:60]
    model = models.load_model(name)
    fs, failed = build_feature_set(subset, [model.config.audio_expert], ["minilm"], progress=False)
    assert not failed
    m = t2a_metrics(similarity_matrix(model, fs), fs.caption_clip)
    chance_r10 = 100 * 10 / fs.n_clips
    assert m.r10 > 3 * chance_r10, m
    assert m.median_rank < fs.n_clips / 4, m
    assert np.isfinite(m.mean_rank)
