"""Experiment runner, two-stage distillation and the papers' optimisers, on tiny synthetic data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from soundseek import losses
from soundseek.eval.metrics import retrieval_metrics
from soundseek.models.multi_expert import ExpertSpec, MultiExpertConfig, build_multiexpert
from soundseek.train.config import TrainConfig
from soundseek.train.data import fit_length
from soundseek.train.distill import paper_config, two_stage
from soundseek.train.experiment import ExperimentConfig, builtin_config, duration_buckets, run_experiment
from soundseek.train.multiexpert_data import subset, synthetic_feature_set
from soundseek.train.trainer import Lookahead, make_optimizer, similarity_matrix, train_model


def fit(model, fs, cfg, targets=None):
    """Train ``model`` in place with the one loop (no validation set: the last epoch is kept)."""
    return [h["loss"] for h in train_model(cfg, fs, model=model, progress=False, targets=targets).history]

torch.set_num_threads(1)
SMALL_DE = {"embed_dim": 16, "hidden": 32}


def small_moee(fs):
    cfg = MultiExpertConfig(
        kind="moee",
        audio_experts=[ExpertSpec("a", 16, max_len=8, clusters=4), ExpertSpec("b", 8, max_len=8, aggregation="mean")],
        text_expert="t", text_dim=12, text_clusters=4, embed_dim=32,
    )  # fmt: skip
    return build_multiexpert(cfg)


def test_fit_length_crops_and_subsamples():
    x = np.arange(20, dtype=np.float32)[:, None]
    assert np.array_equal(fit_length(x, 5)[:, 0], [0, 5, 10, 14, 19])  # evenly spaced, whole clip
    crop = fit_length(x, 5, torch.Generator().manual_seed(0))[:, 0]
    assert len(crop) == 5 and np.all(np.diff(crop) == 1)  # contiguous random crop
    assert fit_length(x, 50) is x


def test_audio_batch_masks_match_lengths():
    fs = synthetic_feature_set(n_clips=6)
    b = fs.audio_batch(np.arange(6), {"a": 4})
    lens = [min(len(f), 4) for f in fs.audio["a"]]
    assert b.mask["a"].sum(1).tolist() == lens
    assert b.frames["b"].shape[1] == max(len(f) for f in fs.audio["b"])  # no max_len: untouched


def test_lookahead_interpolates_every_k_steps():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = Lookahead(torch.optim.SGD([p], lr=1.0), k=2, alpha=0.5)
    for _ in range(2):
        p.grad = torch.tensor([-1.0])  # each SGD step adds 1
        opt.step()
    assert torch.allclose(p.detach(), torch.tensor([1.0]))  # slow 0 -> halfway to fast 2
    assert isinstance(make_optimizer([p], paper_config("moee").optim), Lookahead)
    assert isinstance(make_optimizer([p], paper_config("mmt").optim), torch.optim.Adam)


def test_exponential_lr_decay_per_epoch():
    fs = synthetic_feature_set(n_clips=16)
    model = small_moee(fs)
    cfg = paper_config("moee", epochs=3, batch_size=8, lr=0.01, gamma=0.5)
    hist = train_model(cfg, fs, model=model, progress=False).history
    assert [h["lr"] for h in hist] == pytest.approx([0.01 * 0.5, 0.01 * 0.5**2, 0.01 * 0.5**3])


def test_paper_config_flat_overrides_and_errors():
    cfg = paper_config("moee", lr=0.003, loss="nt_xent", distill_weight=0.5, **{"optim.grad_clip": None})
    assert isinstance(cfg, TrainConfig) and cfg.optim.name == "radam_lookahead"
    assert cfg.optim.lr == 0.003 and cfg.loss.name == "nt_xent" and cfg.loss.distill_weight == 0.5
    assert cfg.optim.grad_clip is None and cfg.optim.warmup_epochs == 0 and cfg.patience is None
    with pytest.raises(ValueError, match="unknown key"):
        paper_config("moee", learning_rate=1)
    with pytest.raises(TypeError, match="must be int"):
        paper_config("moee", epochs="ten")


def test_fit_beats_random_and_similarity_matrix_shape():
    fs = synthetic_feature_set(n_clips=80, seed=1)
    train, test = subset(fs, np.arange(56)), subset(fs, np.arange(56, 80))
    model = small_moee(train)
    hist = fit(model, train, paper_config("moee", epochs=10, batch_size=16))
    assert hist[-1] < hist[0]
    sim = similarity_matrix(model, test)
    assert sim.shape == (test.n_captions, test.n_clips)
    random_r10 = 100 * 10 / test.n_clips
    assert retrieval_metrics(sim, test.caption_clip).t2a.r10 > random_r10 + 20


def test_distillation_targets_rows_sum_to_one_and_two_stage_trains():
    fs = synthetic_feature_set(n_clips=40)
    cfg1 = paper_config("moee", epochs=3, batch_size=8)
    cfg2 = paper_config("moee", epochs=2, batch_size=8, distill_weight=0.5, loss="nt_xent")
    res = two_stage(lambda: small_moee(fs), fs, cfg1, cfg2, k=2, n_stage2=1)
    assert len(res.stage1) == 2 and len(res.stage2) == 1
    assert res.targets.shape == (fs.n_captions, fs.n_clips)
    expected = (similarity_matrix(res.stage1[0], fs) + similarity_matrix(res.stage1[1], fs)) / 2
    assert torch.allclose(res.targets, expected, atol=1e-5)  # estimated correspondences = ensemble mean
    q_t2a, q_a2t = losses.ensemble_targets([res.targets[:8, :8]], 0.07)
    assert torch.allclose(q_t2a.sum(1), torch.ones(8)) and torch.allclose(q_a2t.sum(1), torch.ones(8))
    # stage 2 moved away from its stage-1 initialisation
    p1 = torch.cat([p.flatten() for p in res.stage1[0].parameters()])
    p2 = torch.cat([p.flatten() for p in res.stage2[0].parameters()])
    assert not torch.allclose(p1, p2)
    with pytest.raises(ValueError, match="distill_weight"):
        two_stage(lambda: small_moee(fs), fs, cfg1, cfg1)
    with pytest.raises(ValueError, match="targets must be"):
        fit(small_moee(fs), fs, cfg2, targets=torch.zeros(3, 3))


def test_duration_buckets_split_captions():
    sim = torch.eye(4)
    buckets = duration_buckets(sim, np.arange(4), np.array([5.0, 40.0, 200.0, 10.0]), [30, 120])
    assert [b["n_queries"] for b in buckets.values()] == [2, 1, 1]
    assert all(b["r1"] == 100.0 for b in buckets.values())
    assert duration_buckets(sim, np.arange(4), np.full(4, 5.0), [30, 120])["> 120 s"] is None


def _tiny_config(tmp_path) -> ExperimentConfig:
    d = yaml.safe_load(builtin_config("synthetic").read_text())
    d["seeds"] = 2
    for m in d["models"]:
        if "fit" in m:
            m["fit"]["epochs"] = 4
    d["out_dir"] = str(tmp_path)
    return ExperimentConfig.from_dict(d)


def test_runner_writes_table_json_durations_and_scale_plot(tmp_path):
    cfg = _tiny_config(tmp_path)
    summary = run_experiment(cfg, tmp_path / "run", progress=False)
    out = tmp_path / "run"
    for name in ("results.md", "results.json", "durations.md", "scale.png", "config.yaml"):
        assert (out / name).is_file(), name
    md = (out / "results.md").read_text()
    assert "Text → audio" in md and "Audio → text" in md and "±" in md and "mAP@10" in md
    data = json.loads((out / "results.json").read_text())
    assert set(data["rows"]) == {m.name for m in cfg.models}
    for name, row in data["rows"].items():
        assert len(row["per_seed"]) == 2
        r1s = [r["t2a"]["r1"] for r in row["per_seed"]]
        assert row["aggregate"]["mean"]["t2a"]["r1"] == pytest.approx(np.mean(r1s))
        assert row["aggregate"]["std"]["t2a"]["r1"] == pytest.approx(np.std(r1s))
        assert row["aggregate"]["mean"]["t2a"]["r10"] > data["random"]["t2a"]["r10"], name
    assert set(data["scale"]["dual encoder"]) == {"0.5", "1.0"}
    # saved config reloads to the same experiment
    again = ExperimentConfig.from_yaml(out / "config.yaml")
    assert [m.name for m in again.models] == [m.name for m in cfg.models]
    assert summary["n_test_clips"] == data["n_test_clips"]


def test_ensemble_row_is_mean_of_member_matrices(tmp_path):
    d = {
        "name": "ens", "seeds": 1, "fractions": [1.0], "out_dir": str(tmp_path),
        "data": {"dataset": "synthetic", "audio_experts": ["a", "b"], "text_expert": "t",
                 "synthetic": {"n_clips": 40}},
        "save_models": True,
        "models": [
            {"name": "m1", "kind": "dual_encoder", "params": SMALL_DE, "fit": {"epochs": 2, "batch_size": 8}},
            {"name": "m2", "kind": "dual_encoder", "params": SMALL_DE, "fit": {"epochs": 3, "batch_size": 8}},
            {"name": "both", "kind": "ensemble", "members": ["m1", "m2"]},
        ],
    }  # fmt: skip
    cfg = ExperimentConfig.from_dict(d)
    run_experiment(cfg, tmp_path / "r", progress=False)
    from soundseek.models import load_model
    from soundseek.train.experiment import load_features

    _, test = load_features(cfg.data)
    m1, m2 = (load_model(tmp_path / "r" / "models" / n / "seed0") for n in ("m1", "m2"))
    sim = (similarity_matrix(m1, test) + similarity_matrix(m2, test)) / 2
    expected = retrieval_metrics(sim, test.caption_clip).t2a.mean_rank
    got = json.loads((tmp_path / "r" / "results.json").read_text())["rows"]["both"]["per_seed"][0]["t2a"]["mean_rank"]
    assert got == pytest.approx(expected)
    # pre-train -> fine-tune: a row can start from the saved checkpoint
    d2 = dict(d, name="ft", save_models=False, models=[
        {"name": "ft", "kind": "dual_encoder", "init_from": str(tmp_path / "r" / "models" / "m1" / "seed{seed}"),
         "fit": {"epochs": 0}},
    ])  # fmt: skip
    res = run_experiment(ExperimentConfig.from_dict(d2), tmp_path / "ft", progress=False)
    m1_sim = similarity_matrix(m1, test)
    assert res["rows"]["ft"]["per_seed"][0]["t2a"]["mean_rank"] == pytest.approx(
        retrieval_metrics(m1_sim, test.caption_clip).t2a.mean_rank
    )  # zero epochs of fine-tuning = the pre-trained model


def test_config_errors_are_actionable():
    with pytest.raises(ValueError, match="no models"):
        ExperimentConfig.from_dict({"name": "x"})
    with pytest.raises(ValueError, match="unknown kind"):
        ExperimentConfig.from_dict({"models": [{"name": "a", "kind": "svm"}]})
    with pytest.raises(ValueError, match="members listed above"):
        ExperimentConfig.from_dict({"models": [{"name": "e", "kind": "ensemble", "members": ["later"]}]})
    with pytest.raises(ValueError, match="unknown key"):
        ExperimentConfig.from_dict({"models": [{"name": "a", "kind": "moee", "epochs": 3}]})


def test_cli_register(tmp_path):
    import typer
    from typer.testing import CliRunner

    from soundseek.train.experiment_cli import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None:  # a second command so typer keeps sub-command names
        pass

    d = yaml.safe_load(builtin_config("synthetic").read_text())
    d["models"] = [{"name": "de", "kind": "dual_encoder", "params": SMALL_DE, "fit": {"epochs": 2, "batch_size": 16}}]
    d["fractions"] = [1.0]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(d))
    res = CliRunner().invoke(app, ["experiment", str(cfg), "--seeds", "1", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "R@1" in res.output and (tmp_path / "o" / "results.json").is_file()
    assert json.loads((tmp_path / "o" / "results.json").read_text())["seeds"] == 1


def test_esc50_scores_pick_one_prompt_row_per_class():
    """Zero-shot + class retrieval from a caption x clip matrix where each clip carries its
    class prompt: a perfect matrix scores 100, a shuffled one does not."""
    import numpy as np
    import torch

    from soundseek.train.data import FeatureSet
    from soundseek.train.experiment import Esc50Set, esc50_scores

    clip_class = np.array([0, 0, 1, 1, 2, 2])
    fs = FeatureSet(
        clip_ids=[f"c{i}" for i in range(6)],
        audio={"a": [np.zeros((1, 2), np.float32)] * 6},
        text={"t": np.zeros((6, 2), np.float32)},
        caption_clip=np.arange(6),
        captions=["p"] * 6,
        labels=["x", "x", "y", "y", "z", "z"],
    )
    esc = Esc50Set(fs, clip_class, np.array([0, 2, 4]), ["x", "y", "z"])
    perfect = torch.tensor((clip_class[:, None] == clip_class[None, :]).astype(np.float32))
    s = esc50_scores(perfect, esc)
    assert s["zero_shot"] == 100.0 and s["map10"] == 100.0 and s["r1"] == 100.0
    wrong = torch.tensor((np.roll(clip_class, 2)[:, None] == clip_class[None, :]).astype(np.float32))
    assert esc50_scores(wrong, esc)["zero_shot"] == 0.0


def test_a_missing_esc50_folder_is_said_before_any_feature(tmp_path, monkeypatch):
    """The shipped config's relative `esc50:` from another folder: ~2 min of feature extraction,
    then a FileNotFoundError traceback. Now one line, exit 2, nothing computed."""
    from typer.testing import CliRunner

    from soundseek.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.yaml").write_text("name: x\ndata:\n  dataset: synthetic\n  esc50: ../shared/data/esc50-fold1\n"
                                     "models:\n  - {name: a, kind: dual_encoder}\n")
    res = CliRunner().invoke(app, ["experiment", str(tmp_path / "x.yaml"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert "data.esc50:" in res.output and "meta.csv not found" in res.output and str(tmp_path) in res.output
    assert not (tmp_path / "out").exists()
    from conftest import ESC50

    if not (ESC50 / "meta.csv").is_file():
        return  # (the template check needs a real ESC-50 folder)
    (tmp_path / "y.yaml").write_text(f"name: y\ndata:\n  dataset: synthetic\n  esc50: {ESC50}\n"
                                     f"  esc50_template: 'a {{}} and {{}}'\nmodels:\n  - {{name: a, kind: dual_encoder}}\n")
    res = CliRunner().invoke(app, ["experiment", str(tmp_path / "y.yaml"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "placeholder" in res.output, res.output
