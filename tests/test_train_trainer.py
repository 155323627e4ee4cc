"""Trainer on a small learnable synthetic problem; config YAML; augmentation; determinism."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from soundseek.models import DualEncoder
from soundseek.train.augment import feature_mask, time_mask
from soundseek.train.config import TrainConfig
from soundseek.train.data import FeatureSet
from soundseek.train.trainer import batch_positive_mask, evaluate, lr_lambda, save_run, train_model

torch.set_num_threads(1)

A_DIM, T_DIM = 16, 12


def synthetic(n_clips: int, seed: int, n_classes: int = 12, caps_per_clip: int = 2) -> FeatureSet:
    """Clips of a hidden class: frames = class pattern + noise at random times; captions = a
    different (linear) view of the same class.  Learnable, but only through both heads."""
    rng = np.random.default_rng(1234)
    a_proto = rng.normal(size=(n_classes, A_DIM)).astype(np.float32)
    t_map = rng.normal(size=(n_classes, T_DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)
    cls = rng.integers(0, n_classes, size=n_clips)
    audio, text, cap_clip = [], [], []
    for i, c in enumerate(cls):
        t = int(rng.integers(3, 12))
        f = rng.normal(scale=1.0, size=(t, A_DIM)).astype(np.float32)
        f[rng.integers(0, t)] += 3 * a_proto[c]  # the event is in one frame: max pooling helps
        audio.append(f)
        for _ in range(caps_per_clip):
            text.append(t_map[c] + 0.3 * rng.normal(size=T_DIM).astype(np.float32))
            cap_clip.append(i)
    return FeatureSet(
        clip_ids=[f"clip{i}" for i in range(n_clips)],
        audio={"aisfx": audio},
        text={"minilm": np.stack(text).astype(np.float32)},
        caption_clip=np.array(cap_clip),
        labels=[f"class{c}" for c in cls],
    )


def small_cfg(**over) -> TrainConfig:
    cfg = TrainConfig.from_dict(
        {
            "model": {"type": "dual_encoder", "params": {"audio_dim": A_DIM, "text_dim": T_DIM, "embed_dim": 16, "hidden": 32}},
            "epochs": 12,
            "batch_size": 32,
            "patience": None,
            "optim": {"lr": 3e-3, "warmup_epochs": 1},
        }
    )
    for k, v in over.items():
        obj = cfg
        *path, last = k.split(".")
        for p in path:
            obj = getattr(obj, p)
        setattr(obj, last, v)
    return cfg


@pytest.fixture(scope="module")
def data():
    return synthetic(160, seed=1), synthetic(60, seed=2)


@pytest.mark.parametrize("loss", ["ntxent", "max_margin"])
def test_training_reduces_loss_and_improves_retrieval(data, loss):
    train, val = data
    cfg = small_cfg(**{"loss.name": loss})
    torch.manual_seed(0)
    before = evaluate(DualEncoder.from_config_dict(cfg.model.params).eval(), val)["geo_mean"]
    res = train_model(cfg, train, val, progress=False)
    hist = res.history
    assert hist[-1]["loss"] < 0.8 * hist[0]["loss"]
    after = evaluate(res.model, val)
    assert after["geo_mean"] == pytest.approx(res.best_score)  # best weights restored
    assert after["geo_mean"] > before + 10
    assert after["r10"] > 50  # 60 clips: chance R@10 is ~17 %


def test_deterministic_with_seed(data):
    train, val = data
    cfg = small_cfg(epochs=3, **{"augment.time_mask_prob": 0.5, "augment.feature_mask_prob": 0.5})
    a = train_model(cfg, train, val, progress=False)
    b = train_model(cfg, train, val, progress=False)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    for (k, v), (_, w) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(v, w), k
    c = train_model(small_cfg(epochs=3, seed=1), train, val, progress=False)
    assert [h["loss"] for h in a.history] != [h["loss"] for h in c.history]


def test_all_captions_mode_and_early_stopping(data):
    train, val = data
    cfg = small_cfg(epochs=30, patience=2, **{"data.captions_per_clip": "all", "optim.lr": 3e-2})
    res = train_model(cfg, train, val, progress=False)
    assert len(res.history) < 30  # stopped early once the score stopped improving for 2 epochs
    assert res.best_epoch == len(res.history) - 2


def test_positive_mask_own_clip_and_labels(data):
    train, _ = data
    clips = np.array([0, 1, 2, 3])
    caps = np.concatenate([train.clip_captions[c] for c in clips])
    p = batch_positive_mask(train, caps, clips, label_positives=False).numpy()
    assert p.shape == (8, 4) and p.sum() == 8
    assert (p.argmax(1) == np.repeat(np.arange(4), 2)).all()
    same = [i for i in range(1, train.n_clips) if train.labels[i] == train.labels[0]][0]
    clips = np.array([0, same])
    caps = np.array([train.clip_captions[0][0], train.clip_captions[same][0]])
    assert batch_positive_mask(train, caps, clips, label_positives=True).all()
    assert batch_positive_mask(train, caps, clips, label_positives=False).sum() == 2


def test_save_run_writes_checkpoint_config_metrics_curve(data, tmp_path):
    train, val = data
    cfg = small_cfg(epochs=2)
    res = train_model(cfg, train, val, progress=False)
    model_dir = save_run(res, cfg, tmp_path / "run")
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "config.json").is_file()
    assert (tmp_path / "run" / "curve.png").stat().st_size > 1000
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(metrics["history"]) == 2 and metrics["best_epoch"] in (1, 2)
    saved = TrainConfig.from_yaml(tmp_path / "run" / "train_config.yaml")
    assert saved.out_dir == str((tmp_path / "run").resolve()) != cfg.out_dir  # where the run went, not cfg's default
    assert dataclasses.replace(saved, out_dir=cfg.out_dir) == cfg
    again = DualEncoder.from_pretrained(model_dir)
    assert evaluate(again, val)["geo_mean"] == pytest.approx(res.best_score)


def test_config_yaml_round_trip_and_errors(tmp_path):
    cfg = small_cfg(**{"loss.name": "max_margin", "augment.time_mask_prob": 0.3, "data.max_frames": None})
    path = tmp_path / "c.yaml"
    cfg.to_yaml(path)
    assert TrainConfig.from_yaml(path) == cfg
    with pytest.raises(ValueError, match="unknown key"):
        TrainConfig.from_dict({"optim": {"learning_rate": 1}})
    with pytest.raises(TypeError, match="epochs must be int"):
        TrainConfig.from_dict({"epochs": "ten"})
    # nested sections: types and choices are checked at load time, naming the key path
    with pytest.raises(TypeError, match=r"optim\.lr must be a number, got 'fast'"):
        TrainConfig.from_dict({"optim": {"lr": "fast"}})
    with pytest.raises(TypeError, match=r"loss\.temperature must be a number, got 'hot'"):
        TrainConfig.from_dict({"loss": {"temperature": "hot"}})
    with pytest.raises(TypeError, match=r"augment\.text_noise must be a number"):
        TrainConfig.from_dict({"augment": {"text_noise": True}})
    with pytest.raises(ValueError, match=r"optim\.schedule must be one of cosine, step, exp, constant"):
        TrainConfig.from_dict({"optim": {"schedule": "linear"}})
    assert TrainConfig.from_dict({"optim": {"lr": "1e-3"}}).optim.lr == 0.001  # YAML 1.1 reads 1e-3 as a string
    # numbers out of range: batch_size -1 trained on NaN losses, epochs 0 saved an untrained model
    for bad, msg in [({"batch_size": -1}, r"batch_size must be at least 2"), ({"epochs": 0}, "epochs must be at least 1"),
                     ({"patience": 0}, "patience must be at least 1"), ({"optim": {"lr": 0}}, r"optim\.lr must be above 0"),
                     ({"optim": {"step_epochs": 0}}, r"optim\.step_epochs must be at least 1")]:
        with pytest.raises(ValueError, match=msg):
            TrainConfig.from_dict(bad)
    assert TrainConfig.from_dict({"patience": None}).patience is None  # no early stopping is fine
    with pytest.raises(FileNotFoundError):
        TrainConfig.from_yaml(tmp_path / "missing.yaml")
    # relative data paths resolve against the YAML's folder
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "r.yaml").write_text("data:\n  captions_csv: caps.csv\n")
    assert TrainConfig.from_yaml(tmp_path / "sub" / "r.yaml").data.captions_csv == str(tmp_path / "sub" / "caps.csv")


def test_lr_schedule_warmup_then_decay():
    cfg = small_cfg(epochs=10, **{"optim.warmup_epochs": 2.0})
    f = lr_lambda(cfg, steps_per_epoch=5)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(49) < 0.01
    cfg.optim.schedule = "step"
    cfg.optim.step_epochs, cfg.optim.step_gamma = 3, 0.5
    f = lr_lambda(cfg, steps_per_epoch=5)
    assert f(14) == 1.0 and f(15) == 0.5 and f(30) == 0.25


def test_augmentation_masks_keep_a_frame_and_are_seeded():
    mask = torch.zeros(4, 10, dtype=torch.bool)
    mask[:, :6] = True
    mask[3, :1] = True
    mask[3, 1:] = False
    out = time_mask(mask, prob=1.0, max_frac=0.9, gen=torch.Generator().manual_seed(0))
    assert (out.sum(1) >= 1).all() and (out.sum(1)[:3] < 6).all()
    assert not (out & ~mask).any()  # never turns padding into frames
    again = time_mask(mask, prob=1.0, max_frac=0.9, gen=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    frames = torch.ones(2, 3, 20)
    fm = feature_mask(frames, prob=1.0, max_frac=0.25, gen=torch.Generator().manual_seed(0))
    zeroed = (fm == 0).all(dim=1).sum(dim=1)
    assert ((zeroed >= 1) & (zeroed <= 5)).all()
    assert torch.equal(frames, torch.ones(2, 3, 20))  # input untouched


def test_build_model_initialisation_is_seeded():
    from soundseek.train.trainer import build_model

    a, b = build_model(small_cfg(seed=3)), build_model(small_cfg(seed=3))
    c = build_model(small_cfg(seed=4))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.audio_head.net[0].weight, c.audio_head.net[0].weight)
    with pytest.raises(ValueError, match="unknown model type"):
        build_model(TrainConfig.from_dict({"model": {"type": "nope"}}))


class TokenMeanModel(torch.nn.Module):
    """A model outside soundseek.models that reads token features: the trainer must stay generic."""

    needs_tokens = True
    audio_experts = ["aisfx"]
    text_experts = ["minilm"]

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(A_DIM, 8)
        self.t = torch.nn.Linear(T_DIM, 8)

    def similarity(self, text_batch, audio_batch):
        tok, tmask = text_batch.tokens["minilm"], text_batch.token_mask["minilm"]
        t = (tok * tmask[..., None]).sum(1) / tmask.sum(1, keepdim=True)
        frames, mask = audio_batch.get("aisfx")
        a = (frames * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return torch.nn.functional.normalize(self.t(t), dim=-1) @ torch.nn.functional.normalize(self.a(a), dim=-1).T


def test_trainer_drives_any_model_with_token_features(data):
    train, val = data
    rng = np.random.default_rng(0)
    for fs in (train, val):  # tokens: the sentence vector spread over 2-5 noisy "words"
        fs.tokens = {"minilm": [s + 0.1 * rng.normal(size=(int(rng.integers(2, 6)), T_DIM)).astype(np.float32)
                                for s in fs.text["minilm"]]}
    try:
        torch.manual_seed(0)
        model = TokenMeanModel()
        before = evaluate(model, val)["geo_mean"]
        res = train_model(small_cfg(epochs=6), train, val, model=model, progress=False)
        assert res.model is model
        assert evaluate(model, val)["geo_mean"] > before + 5
    finally:
        for fs in (train, val):
            fs.tokens = {}


# ---------------------------------------------------------------------------------------------
# one loop, one similarity function (issue 9)


def _small_moee(fs):
    from soundseek.models.multi_expert import ExpertSpec, MultiExpertConfig, build_multiexpert

    cfg = MultiExpertConfig(
        kind="moee",
        audio_experts=[ExpertSpec("a", 16, max_len=4, clusters=4), ExpertSpec("b", 8, max_len=4, aggregation="meanmax")],
        text_expert="t", text_dim=12, text_clusters=4, embed_dim=32,
    )  # fmt: skip
    return build_multiexpert(cfg)


def test_validation_experiment_and_eval_paths_give_identical_scores(data):
    """The score a checkpoint was selected on is the score the experiment tables and
    `soundseek evaluate` report: one similarity function, whole clips."""
    from types import SimpleNamespace

    from soundseek.eval.metrics import t2a_metrics
    from soundseek.eval.protocols import ModelEmbedder
    from soundseek.train.experiment import model_scores
    from soundseek.train.multiexpert_data import subset, synthetic_feature_set
    from soundseek.train.trainer import similarity_matrix

    train, val = data
    res = train_model(small_cfg(epochs=3, **{"data.max_frames": 2}), train, val, progress=False)
    best = next(h for h in res.history if h["epoch"] == res.best_epoch)
    exp_sim = model_scores([res.model], val)
    assert torch.equal(exp_sim, similarity_matrix(res.model, val))
    assert t2a_metrics(exp_sim, val.caption_clip).geometric_mean == pytest.approx(best["val_geo_mean"], abs=1e-9)
    # `soundseek evaluate` embeds whole padded clips and sentence vectors through encode_*: same matrix
    emb = ModelEmbedder(
        res.model, progress=False,
        audio_features=lambda items: ([SimpleNamespace(frames=val.audio["aisfx"][i]) for i in items], []),
        text_features=lambda texts: val.text["minilm"][[int(t) for t in texts]],
    )  # fmt: skip
    a, _, _ = emb.embed_audio(list(range(val.n_clips)))
    t = emb.embed_text([str(j) for j in range(val.n_captions)])
    assert np.allclose(t @ a.T, exp_sim.numpy(), atol=1e-5)
    # whole clips: a clip longer than the training crop is scored on all its frames
    clip = int(np.argmax([len(f) for f in val.audio["aisfx"]]))
    frames = torch.from_numpy(val.audio["aisfx"][clip])[None]
    with torch.no_grad():
        whole = res.model.encode_text(torch.from_numpy(val.text["minilm"])) @ res.model.encode_audio(frames).T
    assert torch.allclose(exp_sim[:, clip], whole[:, 0], atol=1e-5)

    # the same for a multi-expert model (token features, two audio experts)
    fs = synthetic_feature_set(n_clips=40, seed=3)
    mtrain, mval = subset(fs, np.arange(28)), subset(fs, np.arange(28, 40))
    cfg = small_cfg(epochs=2, batch_size=8)
    mres = train_model(cfg, mtrain, mval, model=_small_moee(mtrain), progress=False)
    best = next(h for h in mres.history if h["epoch"] == mres.best_epoch)
    msim = model_scores([mres.model], mval)
    assert t2a_metrics(msim, mval.caption_clip).geometric_mean == pytest.approx(best["val_geo_mean"], abs=1e-9)
    with torch.no_grad():
        direct = mres.model.similarity(mval.text_batch(np.arange(mval.n_captions)), mval.audio_batch(np.arange(12)))
    assert torch.allclose(msim, direct, atol=1e-5)


@pytest.mark.parametrize("kind", ["dual_encoder", "moee"])
def test_one_loop_trains_dual_encoder_and_moee_better_than_random(kind):
    """NT-Xent, then NT-Xent + distillation towards the first model's soft targets."""
    from soundseek.eval.metrics import retrieval_metrics
    from soundseek.train.multiexpert_data import subset, synthetic_feature_set
    from soundseek.train.trainer import similarity_matrix

    fs = synthetic_feature_set(n_clips=80, seed=1)
    train, test = subset(fs, np.arange(56)), subset(fs, np.arange(56, 80))

    def build():
        torch.manual_seed(0)
        if kind == "moee":
            return _small_moee(train)
        return DualEncoder(audio_expert="a", text_expert="t", audio_dim=16, text_dim=12, embed_dim=16, hidden=32)

    cfg = TrainConfig.from_dict({"epochs": 15, "batch_size": 16, "patience": None, "loss": {"name": "ntxent"},
                                 "optim": {"lr": 3e-3, "warmup_epochs": 1}})  # fmt: skip
    random_r10 = 100 * 10 / test.n_clips
    first = train_model(cfg, train, model=build(), progress=False)
    assert first.history[-1]["loss"] < first.history[0]["loss"]
    assert retrieval_metrics(similarity_matrix(first.model, test), test.caption_clip).t2a.r10 > random_r10 + 20
    targets = similarity_matrix(first.model, train)
    cfg.loss.distill_weight = 0.5
    second = train_model(cfg, train, model=build(), targets=targets, progress=False)
    assert retrieval_metrics(similarity_matrix(second.model, test), test.caption_clip).t2a.r10 > random_r10 + 20
    with pytest.raises(ValueError, match="targets must be"):
        train_model(cfg, train, model=build(), targets=targets[:3], progress=False)


def _train_app():
    import typer

    from soundseek.train.cli import register

    app = typer.Typer()
    register(app)

    @app.command("noop")  # a second command keeps typer in multi-command mode, as in the real CLI
    def _noop() -> None:
        pass

    return app


def test_train_cli_checks_nested_types_before_loading_features(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from soundseek.train import pipeline

    def boom(*a, **k):
        raise AssertionError("features must not be loaded for a broken config")

    monkeypatch.setattr(pipeline, "prepare_data", boom)
    for body, msg in [("optim: {lr: fast}\n", "optim.lr must be a number, got 'fast'"),
                      ("loss: {temperature: hot}\n", "loss.temperature must be a number, got 'hot'")]:
        (tmp_path / "r.yaml").write_text(body)
        res = CliRunner().invoke(_train_app(), ["train", str(tmp_path / "r.yaml")])
        assert res.exit_code == 2 and msg in res.output, res.output


def test_train_cli_out_is_recorded_and_data_errors_say_what_to_set(tmp_path, monkeypatch):
    from pathlib import Path

    from typer.testing import CliRunner

    from soundseek.train import pipeline

    seen = {}

    def fake_run(cfg, **kw):
        seen["out_dir"], seen["kw"] = cfg.out_dir, kw
        raise ValueError("stop here")

    monkeypatch.setattr(pipeline, "run_training", fake_run)
    (tmp_path / "r.yaml").write_text("epochs: 1\n")
    res = CliRunner().invoke(_train_app(), ["train", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and seen["out_dir"] == str(tmp_path / "o") and "out_dir" not in seen["kw"]
    monkeypatch.undo()

    recipes = Path(pipeline.__file__).parent / "recipes"
    res = CliRunner().invoke(_train_app(), ["train", str(recipes / "everyday.yaml")])
    assert res.exit_code == 1
    out = " ".join(res.output.split())
    assert "data.captions_csv is empty" in out and "python -m soundseek.train.recipes.everyday" in out
    assert "data.audio_root" in out and "shared/data/sfx-corpus" in out


def test_train_help_example_recipe_loads_from_a_checkout():
    import re
    from pathlib import Path

    from soundseek.train.cli import train_command
    from soundseek.train.pipeline import shipped_corpus_paths

    help_text = train_command.__defaults__[0].help
    example = re.search(r"e\.g\. (\S+\.yaml)", help_text).group(1)
    root = Path(__file__).resolve().parents[1]
    cfg = TrainConfig.from_yaml(root / example)
    csv, audio = shipped_corpus_paths()
    assert Path(cfg.data.captions_csv) == csv and csv.is_file()
    assert Path(cfg.data.audio_root) == audio.resolve()
