"""Protocols and `soundseek evaluate` with a tiny fake model (random projections / identity)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from soundseek.data.types import AudioCaptions
from soundseek.eval import protocols as P
from soundseek.eval import runner as R
from soundseek.experts.base import AudioFeatures

torch.set_num_threads(1)
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ESC50 = SHARED / "data" / "esc50-fold1"
DIM = 60


@dataclass
class _Cfg:
    audio_expert: str = "fake-audio"
    text_expert: str = "fake-text"


class FakeModel(torch.nn.Module):
    """Single-vector model: masked-mean frames / sentence through a linear map (identity or random)."""

    def __init__(self, random: bool = False, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.config = _Cfg()
        self.wa = torch.randn(DIM, 16, generator=g) if random else torch.eye(DIM)
        self.wt = torch.randn(DIM, 16, generator=g) if random else torch.eye(DIM)

    def encode_audio(self, frames, mask):
        m = mask.unsqueeze(-1).float()
        pooled = (frames * m).sum(1) / m.sum(1)
        return torch.nn.functional.normalize(pooled @ self.wa, dim=-1)

    def encode_text(self, sentence):
        return torch.nn.functional.normalize(sentence @ self.wt, dim=-1)


def _onehot(k: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[k % DIM] = 1.0
    return v


def fake_audio_features(items):
    """Clip 'clip<k>.wav' / ESC-50 target k -> frames that are one-hot k (+ a frame of noise)."""
    out, failed = [], []
    for it in items:
        name = Path(it.audio_path).name
        if "broken" in name:
            out.append(None)
            failed.append((str(it.audio_path), "AudioError: cannot decode"))
            continue
        k = int(it.meta["target"]) if "target" in it.meta else int(re.findall(r"\d+", name)[0])
        frames = np.stack([_onehot(k), _onehot(k), 0.1 * np.random.default_rng(k).random(DIM).astype(np.float32)])
        out.append(AudioFeatures(frames=frames, pooled=frames.mean(0), hop_s=1.0, window_s=1.0))
    return out, failed


def make_text_features(classes=None):
    def fn(texts):
        rows = []
        for t in texts:
            nums = re.findall(r"number (\d+)", t)
            if nums:
                k = int(nums[0])
            else:  # class prompt: find which readable class name it contains (longest match)
                names = [P.readable_class_name(c) for c in classes]
                k = max((i for i, n in enumerate(names) if n in t), key=lambda i: len(names[i]))
            rows.append(_onehot(k))
        return np.stack(rows)

    return fn


def _items(n=8, broken=False, labels=False):
    items = [
        AudioCaptions(
            Path(f"/x/clip{k}.wav"),
            [f"sound number {k}", f"the number {k} sound", f"number {k}"],
            "test",
            label=f"group{k // 2}" if labels else None,
        )
        for k in range(n)
    ]
    if broken:
        items.append(AudioCaptions(Path("/x/broken.wav"), ["sound number 99"], "test"))
    return items


def _embedder(random=False, classes=None):
    return P.ModelEmbedder(
        FakeModel(random=random),
        batch_size=3,
        audio_features=fake_audio_features,
        text_features=make_text_features(classes),
    )


def test_caption_retrieval_identity_model_is_perfect_and_failures_are_reported():
    res = P.evaluate_caption_retrieval(_embedder(), _items(broken=True), "toy", n_random_runs=5)
    assert res.n_audio == 8 and res.n_captions == 24
    assert res.report.t2a.r1 == 100.0 and res.report.a2t.r1 == 100.0
    assert res.report.a2t.map10 == pytest.approx(100.0)
    assert res.baseline.t2a.r1 < 40  # random: 1/8 = 12.5 %
    assert res.failed == [("/x/broken.wav", "AudioError: cannot decode")]
    md = res.to_markdown()
    assert "| model | 100.0 |" in md and "| random |" in md and "left out" in md
    json.dumps(res.to_dict())


def test_label_aware_t2a_counts_same_label_clips():
    res = P.evaluate_caption_retrieval(_embedder(), _items(8, labels=True), "toy", n_random_runs=5)
    assert res.label_t2a is not None and res.label_t2a.r1 == 100.0 and res.label_t2a.n_queries == 24
    # two relevant clips per caption, one of them ranked first: AP@10 = (1 + 2/r2) / 2 < 1 unless r2 = 2
    assert res.label_t2a.map10 <= 100.0
    assert res.label_t2a_baseline.r1 == pytest.approx(100 * 2 / 8, abs=10)
    assert "label relevant" in res.to_markdown() and "label_t2a" in res.to_dict()
    assert P.evaluate_caption_retrieval(_embedder(), _items(8), "toy", n_random_runs=2).label_t2a is None


def test_random_projection_model_runs_and_differs_from_identity():
    res = P.evaluate_caption_retrieval(_embedder(random=True), _items(20), "toy", n_random_runs=3)
    assert 0 <= res.report.t2a.r1 <= 100 and res.report.t2a.n_gallery == 20
    # text and audio go through different random maps: not aligned any more
    assert res.report.t2a.r1 < 100.0


def test_readable_names_and_templates():
    assert P.readable_class_name("crying_baby") == "crying baby"
    assert P.readable_class_name("door_wood_knock") == "door wood knock"
    with pytest.raises(ValueError, match="placeholder"):
        P.class_text_embeddings(_embedder(classes=["dog"]), ["dog"], ["no slot"])
    # two slots, a named one, a lone brace: were an IndexError / KeyError traceback (`evaluate -t`)
    for bad, says in [("a {} and {}", r"it has 2 fields \(\{\}, \{\}\)"), ("{name}", r"1 field \(\{name\}\)"),
                      ("a {", "literal braces")]:
        with pytest.raises(ValueError, match=says):
            P.class_text_embeddings(_embedder(classes=["dog"]), ["dog"], [bad])
    P.check_template("{{braces}} and the sound of {}")  # escaped braces are fine
    from soundseek.eval.runner import EvalConfig

    with pytest.raises(ValueError, match="placeholder"):  # refused with the settings, before any feature
        EvalConfig(templates=["a {} and {}"])


def test_class_text_embeddings_average_templates():
    seen = []

    def text_fn(texts):
        seen.extend(texts)
        return np.stack([_onehot(len(t)) for t in texts])

    emb = P.ModelEmbedder(FakeModel(), audio_features=fake_audio_features, text_features=text_fn)
    out = P.class_text_embeddings(emb, ["crying_baby", "dog"], ["the sound of a {}", "{} can be heard"])
    assert seen == ["the sound of a crying baby", "crying baby can be heard", "the sound of a dog", "dog can be heard"]
    assert out.shape == (2, DIM)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0)
    # two different one-hots averaged and renormalised -> 1/sqrt(2) each
    assert np.isclose(out[0].max(), 1 / np.sqrt(2))


@pytest.mark.skipif(not ESC50.is_dir(), reason="shared ESC-50 fold 1 not available")
def test_esc50_protocol_with_fake_model():
    items, classes = P.load_esc50(ESC50)
    assert len(classes) == 50 and classes[0] == "dog" and len(items) == 398
    res = P.evaluate_classes(_embedder(classes=classes), items, classes, "ESC-50", n_random_runs=5)
    assert res.zero_shot.accuracy == 100.0
    assert res.retrieval.map10 == pytest.approx(100.0) and res.retrieval.r1 == 100.0
    assert res.retrieval.n_queries == 50
    assert res.zero_shot_baseline.accuracy < 10  # chance = 2 %
    assert "zero-shot acc" in res.to_markdown()


def test_runner_writes_results_and_skips_missing_data(tmp_path, monkeypatch):
    monkeypatch.delenv("SOUNDSEEK_DATA", raising=False)  # else the saved config names it as data_root
    cfg = R.EvalConfig(
        model="fake",
        protocols=["esc50", "clotho"],
        esc50_dir=str(ESC50) if ESC50.is_dir() else str(tmp_path / "nope"),
        clotho_dir=str(tmp_path / "missing"),
        output_dir=str(tmp_path / "out"),
        n_random_runs=3,
    )
    classes = P.load_esc50(ESC50)[1] if ESC50.is_dir() else None
    run = R.run_evaluation(cfg, embedder=_embedder(classes=classes), log=lambda m: None)
    assert "clotho" in run.skipped and "does not exist" in run.skipped["clotho"]
    out = tmp_path / "out"
    saved = json.loads((out / "config.json").read_text())
    assert R.EvalConfig.from_dict(saved) == cfg
    results = json.loads((out / "results.json").read_text())
    assert set(results["skipped"]) >= {"clotho"}
    assert results["model_config"] == {"audio_expert": "fake-audio", "text_expert": "fake-text"}
    assert (out / "results.md").read_text().startswith("# Evaluation of `fake`")
    if ESC50.is_dir():
        assert results["results"]["esc50"]["zero_shot"]["accuracy"] == 100.0


def _hash_vec(key: str, dim: int) -> np.ndarray:
    import zlib

    return np.random.default_rng(zlib.crc32(key.encode())).standard_normal(dim).astype(np.float32)


@pytest.mark.skipif(not (SHARED / "data" / "clotho-mini").is_dir(), reason="shared fixtures not available")
def test_runner_reads_clotho_and_audiocaps_fixtures(tmp_path):
    """Format check: the real 5-caption files go through the soundseek.data loaders into the tables."""

    def audio_fn(items):
        feats = []
        for it in items:
            assert Path(it.audio_path).is_file(), it.audio_path
            fr = np.stack([_hash_vec(str(it.audio_path), DIM)] * 2)
            feats.append(AudioFeatures(frames=fr, pooled=fr.mean(0), hop_s=1.0, window_s=1.0))
        return feats, []

    emb = P.ModelEmbedder(
        FakeModel(random=True),
        audio_features=audio_fn,
        text_features=lambda texts: np.stack([_hash_vec(t, DIM) for t in texts]),
    )
    cfg = R.EvalConfig(protocols=["clotho", "audiocaps"], data_root=str(SHARED / "data"),
                       output_dir=str(tmp_path), n_random_runs=2)  # fmt: skip
    run = R.run_evaluation(cfg, embedder=emb, log=lambda m: None)
    assert not run.skipped, run.skipped
    clotho, audiocaps = run.results["clotho"], run.results["audiocaps"]
    assert (clotho.n_audio, clotho.n_captions) == (7, 35)
    assert (audiocaps.n_audio, audiocaps.n_captions) == (14, 70)
    assert audiocaps.report.t2a.n_gallery == 14 and audiocaps.report.a2t.n_gallery == 70


def test_config_validation():
    with pytest.raises(ValueError, match="unknown protocol"):
        R.EvalConfig(protocols=["imagenet"])
    with pytest.raises(ValueError, match="unknown evaluate config keys"):
        R.EvalConfig.from_dict({"modle": "x"})


def test_cli_reports_missing_model_and_data(tmp_path, monkeypatch):
    from soundseek.eval.cli import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop():  # a second command keeps typer in multi-command mode, as in the real CLI
        pass

    monkeypatch.delenv("SOUNDSEEK_DATA", raising=False)
    result = CliRunner().invoke(app, ["evaluate", "--model", str(tmp_path / "no-model"), "-p", "esc50"])
    assert result.exit_code == 2
    assert "no-model" in result.output


class RealExpertsRandomModel(torch.nn.Module):
    """Random projections over the real aisfx (512-d) and minilm (384-d) features."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.config = _Cfg(audio_expert="aisfx", text_expert="minilm")
        self.wa = torch.randn(512, 32, generator=g)
        self.wt = torch.randn(384, 32, generator=g)

    def encode_audio(self, frames, mask):
        m = mask.unsqueeze(-1).float()
        return torch.nn.functional.normalize(((frames * m).sum(1) / m.sum(1)) @ self.wa, dim=-1)

    def encode_text(self, sentence):
        return torch.nn.functional.normalize(sentence @ self.wt, dim=-1)


@pytest.mark.slow
@pytest.mark.skipif(not ESC50.is_dir(), reason="shared ESC-50 fold 1 not available")
def test_esc50_end_to_end_real_features(tmp_path):
    from soundseek.features import FeatureStore

    items, classes = P.load_esc50(ESC50)
    items = [it for it in items if it.meta["target"] < 3]  # dog, rooster, pig: 22 clips
    emb = P.ModelEmbedder(RealExpertsRandomModel(), store=FeatureStore(tmp_path / "fs"), progress=False)
    res = P.evaluate_classes(emb, items, classes[:3], "ESC-50 subset", templates=["the sound of a {}"], n_random_runs=5)
    assert res.zero_shot.n_items == len(items) and not res.failed
    assert 0.0 <= res.zero_shot.accuracy <= 100.0 and res.retrieval.n_queries == 3
    assert np.isfinite(res.retrieval.map10)


@pytest.mark.slow
@pytest.mark.skipif(not ESC50.is_dir(), reason="shared ESC-50 fold 1 not available")
def test_cli_end_to_end_with_saved_dual_encoder(tmp_path):
    """`evaluate --model DIR -p esc50` on a 3-class ESC-50 subset with an untrained DualEncoder."""
    import csv

    from soundseek.eval.cli import register
    from soundseek.models import DualEncoder

    torch.manual_seed(0)
    model_dir = DualEncoder(audio_expert="aisfx", text_expert="minilm").save_pretrained(tmp_path / "model")
    sub = tmp_path / "esc"
    (sub / "audio").mkdir(parents=True)
    with open(ESC50 / "meta.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["target"]) < 3]
    with open(sub / "meta.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        (sub / "audio" / r["filename"]).symlink_to(ESC50 / "audio" / r["filename"])

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop():
        pass

    out = tmp_path / "out"
    args = ["evaluate", "--model", str(model_dir), "-p", "esc50", "--esc50", str(sub), "--out", str(out),
            "--feature-cache", str(tmp_path / "fs"), "-t", "the sound of a {}", "--random-runs", "3"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())["results"]["esc50"]
    assert res["zero_shot"]["n_items"] == len(rows) and res["zero_shot"]["n_classes"] == 3
    assert res["templates"] == ["the sound of a {}"]
    assert json.loads((out / "config.json").read_text())["model"] == str(model_dir)
    assert "zero-shot acc" in (out / "results.md").read_text()


def _fake_esc50(root: Path, classes=("dog", "rooster", "pig"), per_class=3) -> Path:
    (root / "audio").mkdir(parents=True)
    lines = ["filename,fold,target,category"]
    for t, c in enumerate(classes):
        lines += [f"1-{t}{i}-A-{t}.wav,1,{t},{c}" for i in range(per_class)]
    (root / "meta.csv").write_text("\n".join(lines) + "\n")
    return root


def test_results_record_version_fingerprint_cache_and_class_names(tmp_path):
    import soundseek
    from soundseek.models import weights_fingerprint

    esc = _fake_esc50(tmp_path / "esc")
    classes = P.load_esc50(esc)[1]
    cfg = R.EvalConfig(model="fake", protocols=["esc50"], esc50_dir=str(esc), output_dir=str(tmp_path / "out"),
                       n_random_runs=2, feature_cache=str(tmp_path / "fs"))  # fmt: skip
    emb = _embedder(random=True, classes=classes)
    R.run_evaluation(cfg, embedder=emb, log=lambda m: None)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    for rec in (results["recorded"], saved["recorded"]):
        assert rec["soundseek_version"] == soundseek.__version__
        assert rec["model_fingerprint"] == weights_fingerprint(emb.model) and len(rec["model_fingerprint"]) == 32
        assert rec["feature_cache"] == str((tmp_path / "fs").resolve())
    assert R.EvalConfig.from_dict(saved) == cfg  # the recorded block is not a setting
    per_class = results["results"]["esc50"]["zero_shot"]["per_class_accuracy"]
    assert set(per_class) == {"dog", "rooster", "pig"}
    # without --feature-cache the store's default root is recorded, resolved
    assert Path(R.run_record(R.EvalConfig(), emb.model)["feature_cache"]).is_absolute()


def _eval_app():
    from soundseek.eval.cli import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop():
        pass

    return app


def test_rerun_of_saved_config_writes_a_new_folder(tmp_path, monkeypatch):
    esc = _fake_esc50(tmp_path / "esc")
    classes = P.load_esc50(esc)[1]
    monkeypatch.setattr(R, "make_embedder", lambda cfg, model=None: _embedder(classes=classes))
    monkeypatch.chdir(tmp_path)
    run = CliRunner().invoke(_eval_app(), ["evaluate", "-m", "fake", "-p", "esc50", "--esc50", str(esc),
                                           "--random-runs", "2", "--out", "eval1"])  # fmt: skip
    assert run.exit_code == 0, run.output
    first = (tmp_path / "eval1" / "results.json").stat().st_mtime_ns
    again = CliRunner().invoke(_eval_app(), ["evaluate", "--config", "eval1/config.json"])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "eval1" / "results.json").stat().st_mtime_ns == first  # the original is untouched
    new = [p.parent for p in (tmp_path / "runs" / "eval").glob("*/results.json")]
    assert len(new) == 1 and f"results written to {new[0]}" in again.output
    assert f"not {tmp_path / 'eval1'}" in again.output.replace("\n", "")
    # --out naming the saved folder explicitly overwrites it
    same = CliRunner().invoke(_eval_app(), ["evaluate", "--config", "eval1/config.json", "--out", "eval1"])
    assert same.exit_code == 0 and (tmp_path / "eval1" / "results.json").stat().st_mtime_ns != first


def test_saved_config_names_its_folders_absolutely(tmp_path, monkeypatch):
    """A config saved from one folder re-runs from another: the model folder and the data folders
    given as relative paths are saved resolved (a shipped model's name stays a name)."""
    esc = _fake_esc50(tmp_path / "esc")
    (tmp_path / "runs" / "a").mkdir(parents=True)
    classes = P.load_esc50(esc)[1]
    monkeypatch.setattr(R, "make_embedder", lambda cfg, model=None: _embedder(classes=classes))
    monkeypatch.chdir(tmp_path)
    run = CliRunner().invoke(_eval_app(), ["evaluate", "-m", "runs/a", "-p", "esc50", "--esc50", "esc",
                                           "--random-runs", "2", "--out", "eval1"])  # fmt: skip
    assert run.exit_code == 0, run.output
    saved = json.loads((tmp_path / "eval1" / "config.json").read_text())
    assert saved["model"] == str(tmp_path / "runs" / "a") and saved["esc50_dir"] == str(esc)
    assert R.absolute_paths({"model": "default", "esc50_dir": None})["model"] == "default"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    again = CliRunner().invoke(_eval_app(), ["evaluate", "--config", str(tmp_path / "eval1" / "config.json")])
    assert again.exit_code == 0 and "skipped" not in again.output, again.output


def test_saved_config_names_data_root_and_feature_cache_absolutely(tmp_path, monkeypatch):
    """--data-root (the documented way to run it) and --feature-cache given relative, and a data
    root taken from $SOUNDSEEK_DATA, are saved absolute: the re-run from another folder finds the
    same data and the same feature cache (before: "folder data/esc50-fold1 does not exist")."""
    _fake_esc50(tmp_path / "data" / "esc50-fold1")
    (tmp_path / "fc").mkdir()
    classes = P.load_esc50(tmp_path / "data" / "esc50-fold1")[1]
    monkeypatch.setattr(R, "make_embedder", lambda cfg, model=None: _embedder(classes=classes))
    monkeypatch.delenv("SOUNDSEEK_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    base = ["evaluate", "-m", "fake", "-p", "esc50", "--random-runs", "2", "--feature-cache", "fc"]
    run = CliRunner().invoke(_eval_app(), base + ["--data-root", "data", "--out", "eval1"])
    assert run.exit_code == 0, run.output
    saved = json.loads((tmp_path / "eval1" / "config.json").read_text())
    assert saved["data_root"] == str(tmp_path / "data") and saved["feature_cache"] == str(tmp_path / "fc")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    again = CliRunner().invoke(_eval_app(), ["evaluate", "--config", str(tmp_path / "eval1" / "config.json"),
                                             "--out", str(tmp_path / "eval2")])  # fmt: skip
    assert again.exit_code == 0 and "skipped" not in again.output, again.output
    assert not (tmp_path / "elsewhere" / "fc").exists()  # no empty store made where it was re-run
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOUNDSEEK_DATA", "data")
    env = CliRunner().invoke(_eval_app(), base + ["--out", "eval3"])
    assert env.exit_code == 0, env.output
    assert json.loads((tmp_path / "eval3" / "config.json").read_text())["data_root"] == str(tmp_path / "data")


def test_options_equal_to_their_defaults_still_override_a_config(tmp_path, monkeypatch):
    """`--config RUN/config.json --seed 0 --random-runs 20 --no-strict` runs with seed 0, 20
    random runs and not strict, whatever the file says (before: a value equal to the option's
    default was taken for "not given" and the file's value was used, silently)."""
    esc = _fake_esc50(tmp_path / "esc")
    classes = P.load_esc50(esc)[1]
    monkeypatch.setattr(R, "make_embedder", lambda cfg, model=None: _embedder(classes=classes))
    monkeypatch.chdir(tmp_path)
    first = CliRunner().invoke(_eval_app(), ["evaluate", "-m", "fake", "-p", "esc50", "--esc50", "esc", "--seed", "3",
                                             "--random-runs", "5", "--strict", "--out", "a"])  # fmt: skip
    assert first.exit_code == 0, first.output
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert (saved["seed"], saved["n_random_runs"], saved["strict"]) == (3, 5, True)
    kept = CliRunner().invoke(_eval_app(), ["evaluate", "--config", "a/config.json", "--out", "b"])
    assert kept.exit_code == 0, kept.output
    kept_cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    assert (kept_cfg["seed"], kept_cfg["n_random_runs"], kept_cfg["strict"]) == (3, 5, True)  # not given: the file's
    over = CliRunner().invoke(_eval_app(), ["evaluate", "--config", "a/config.json", "--seed", "0", "--random-runs",
                                            "20", "--no-strict", "-m", "default", "--out", "c"])  # fmt: skip
    assert over.exit_code == 0, over.output
    cfg = json.loads((tmp_path / "c" / "config.json").read_text())
    assert (cfg["seed"], cfg["n_random_runs"], cfg["strict"], cfg["model"]) == (0, 20, False, "default")
    assert "mean of 20 seeded runs, seed 0" in (tmp_path / "c" / "results.md").read_text()


def _clotho_layout(root: Path, stem: str, with_audio: bool) -> Path:
    """A Clotho evaluation folder of four clips ``<stem><k>.wav``: its captions CSV, and the audio
    files when ``with_audio`` (the fake features fail every clip whose name says "broken")."""
    (root / "evaluation").mkdir(parents=True)
    rows = ["file_name,caption_1,caption_2,caption_3,caption_4,caption_5"]
    rows += [f"{stem}{k}.wav," + ",".join(f"sound number {k} take {j}" for j in range(5)) for k in range(4)]
    (root / "clotho_captions_evaluation.csv").write_text("\n".join(rows) + "\n")
    for k in range(4 if with_audio else 0):
        (root / "evaluation" / f"{stem}{k}.wav").write_bytes(b"RIFF")
    return root


def test_a_protocol_without_audio_is_skipped_and_the_others_are_kept(tmp_path, monkeypatch):
    """A Clotho folder with its captions CSV but none of its audio (the shared caption files) is
    data not found: skipped with the reason, the protocols that ran are written (before: one
    ValueError, exit 2, nothing written).  All clips there but none decodable: skipped too, and
    with --strict the run fails (exit 1)."""
    esc = _fake_esc50(tmp_path / "esc")
    classes = P.load_esc50(esc)[1]
    monkeypatch.setattr(R, "make_embedder", lambda cfg, model=None: _embedder(classes=classes))
    monkeypatch.chdir(tmp_path)
    _clotho_layout(tmp_path / "text_only", "clip", with_audio=False)
    args = ["evaluate", "-m", "fake", "-p", "esc50", "-p", "clotho", "--esc50", "esc", "--random-runs", "2"]
    run = CliRunner().invoke(_eval_app(), args + ["--clotho", "text_only", "--out", "x"])
    assert run.exit_code == 0, run.output
    results = json.loads((tmp_path / "x" / "results.json").read_text())
    assert set(results["results"]) == {"esc50"}
    assert "none of the 4 clips its captions name has its audio file" in results["skipped"]["clotho"]
    _clotho_layout(tmp_path / "broken", "broken", with_audio=True)
    lax = CliRunner().invoke(_eval_app(), args + ["--clotho", "broken", "--out", "y"])
    assert lax.exit_code == 0, lax.output
    lax_results = json.loads((tmp_path / "y" / "results.json").read_text())
    assert set(lax_results["results"]) == {"esc50"}
    assert "none of the 4 clips could be embedded" in lax_results["skipped"]["clotho"]
    strict = CliRunner().invoke(_eval_app(), args + ["--clotho", "broken", "--out", "z", "--strict"])
    assert strict.exit_code == 1 and "none of the 4 clips could be embedded" in strict.output
    assert not (tmp_path / "z").exists()


def test_strict_fails_on_a_missing_or_undecodable_clip(tmp_path, monkeypatch):
    """A paper needs every clip: without --strict a bad clip is left out (and counted), with it
    the run fails with exit 1 and writes nothing."""
    esc = _fake_esc50(tmp_path / "esc")
    with open(esc / "meta.csv", "a") as f:
        f.write("broken-1-A-0.wav,1,0,dog\n")
    classes = P.load_esc50(esc)[1]
    monkeypatch.setattr(R, "make_embedder", lambda cfg, model=None: _embedder(classes=classes))
    monkeypatch.chdir(tmp_path)
    args = ["evaluate", "-m", "fake", "-p", "esc50", "--esc50", "esc", "--random-runs", "2"]
    lax = CliRunner().invoke(_eval_app(), args + ["--out", "lax"])
    assert lax.exit_code == 0 and "left out" in lax.output
    strict = CliRunner().invoke(_eval_app(), args + ["--out", "strict", "--strict"])
    assert strict.exit_code == 1 and "1 clip(s) missing or undecodable" in strict.output
    assert "broken-1-A-0.wav" in strict.output and not (tmp_path / "strict").exists()


def test_a_config_that_cannot_be_read_is_one_line_not_a_traceback(tmp_path):
    missing = CliRunner().invoke(_eval_app(), ["evaluate", "--config", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and "cannot read --config" in missing.output
    assert not isinstance(missing.exception, FileNotFoundError)
    (tmp_path / "list.json").write_text("[1, 2]")
    odd = CliRunner().invoke(_eval_app(), ["evaluate", "--config", str(tmp_path / "list.json")])
    assert odd.exit_code == 2 and "not a JSON object" in odd.output


def test_train_output_folder_loads_its_model(tmp_path):
    from soundseek.models import DualEncoder, ModelNotInstalledError, load_model, model_dir_for, weights_fingerprint

    run = tmp_path / "tr1"
    DualEncoder(audio_expert="aisfx", text_expert="minilm").save_pretrained(run / "model")
    (run / "train_config.yaml").write_text("epochs: 1\n")
    loaded = load_model(run)
    assert isinstance(loaded, DualEncoder) and model_dir_for(run) == run / "model"
    # the fingerprint R.run_record records: same weights -> same digest, other weights -> another
    assert weights_fingerprint(loaded) == weights_fingerprint(load_model(run / "model"))
    torch.manual_seed(1)
    assert weights_fingerprint(DualEncoder(audio_expert="aisfx", text_expert="minilm")) != weights_fingerprint(loaded)
    DualEncoder(audio_expert="aisfx", text_expert="minilm").save_pretrained(run / "model2")
    with pytest.raises(ModelNotInstalledError, match=r"pass one of: .*tr1/model, .*tr1/model2"):
        load_model(run)


def test_runner_evaluates_sounddescs(tmp_path):
    """SoundDescs (one of the benchmark study's three sets) had a loader but no protocol in
    `soundseek evaluate`: the test split's described ids, their descriptions as captions."""
    import soundfile as sf

    root = tmp_path / "sounddescs"
    (root / "audio").mkdir(parents=True)
    (root / "test_list.txt").write_text("07033137\n07033138\n07033139\nnhu05091190\n")
    (root / "BBCSoundEffects.csv").write_text(
        "location,description,secs,category,CDNumber,CDName,tracknum\n"
        "07033137.wav,Rain on a tin roof,3,Weather,1,Wx,1\n"
        "07033138.wav,Dog barking in the distance,3,Animals,1,An,2\n"
        "07033139.wav,Church bells ringing,3,Bells,1,Be,3\n")
    empty = R.EvalConfig(protocols=["sounddescs"], sounddescs_dir=str(root), output_dir=str(tmp_path / "o0"),
                         n_random_runs=2)
    with pytest.warns(UserWarning):  # an undescribed id, and no audio at all
        skipped = R.run_evaluation(empty, embedder=_embedder(classes=[]), log=lambda m: None).skipped
    assert "none of the 3 described test clips" in skipped["sounddescs"], skipped
    assert not (tmp_path / "o0").exists()  # nothing ran: no folder of empty results
    gone = R.EvalConfig(protocols=["esc50"], esc50_dir=str(tmp_path / "no-such"), output_dir=str(tmp_path / "o1"))
    run = R.run_evaluation(gone, embedder=_embedder(classes=[]), log=lambda m: None)
    assert "pass --esc50 PATH (EvalConfig.esc50_dir)" in run.skipped["esc50"] and run.output_dir is None
    assert not (tmp_path / "o1").exists()
    for i, f in enumerate(("07033137", "07033138", "07033139")):
        sf.write(root / "audio" / f"{f}.wav", np.sin(np.arange(8000) * (0.05 + 0.02 * i)).astype(np.float32), 16000)

    def audio_fn(items):
        feats = []
        for it in items:
            fr = np.stack([_hash_vec(str(it.audio_path), DIM)] * 2)
            feats.append(AudioFeatures(frames=fr, pooled=fr.mean(0), hop_s=1.0, window_s=1.0))
        return feats, []

    emb = P.ModelEmbedder(FakeModel(random=True), audio_features=audio_fn,
                          text_features=lambda texts: np.stack([_hash_vec(t, DIM) for t in texts]))
    cfg = R.EvalConfig(protocols=["sounddescs"], sounddescs_dir=str(root), output_dir=str(tmp_path / "o1"),
                       n_random_runs=2)
    with pytest.warns(UserWarning, match="1 of 4 ids have no description"):
        run = R.run_evaluation(cfg, embedder=emb, log=lambda m: None)
    assert not run.skipped and (run.results["sounddescs"].n_audio, run.results["sounddescs"].n_captions) == (3, 3)
    assert "SoundDescs test" in (tmp_path / "o1" / "results.md").read_text()
    assert json.loads((tmp_path / "o1" / "config.json").read_text())["sounddescs_dir"] == str(root)
