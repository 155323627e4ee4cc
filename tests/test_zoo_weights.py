"""Weight resolution through the real code path: cache layout, checksums, downloads, errors."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from soundseek.experts import weights as W

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SOUNDSEEK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SOUNDSEEK_OFFLINE", "1")
    return tmp_path / "cache"


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_vggish(path, seed=0):
    from soundseek.experts.vggish import VGGishExpert

    ex = VGGishExpert(random_init=True, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ex.model.state_dict(), path)
    return ex


def test_cache_layout_follows_env(isolated_cache):
    assert W.cache_dir() == isolated_cache
    assert W.default_path("panns-cnn14") == isolated_cache / "weights" / "panns-cnn14" / "Cnn14_mAP=0.431.pth"


def test_missing_weights_offline_names_file_and_url():
    with pytest.raises(W.WeightsError) as err:
        W.resolve("panns-cnn14")
    msg = str(err.value)
    assert str(W.default_path("panns-cnn14")) in msg and W.WEIGHTS["panns-cnn14"].url in msg
    # the CLI has no --weights on index/evaluate: the message must not promise one
    assert "weights=PATH" in msg and "models verify panns-cnn14 --weights PATH" in msg


def test_missing_hf_snapshot_offline_names_repo():
    with pytest.raises(W.WeightsError, match="laion/clap-htsat-unfused") as err:
        W.resolve_hf("clap-text")
    # the command it gives is huggingface_hub's CLI as installed (`huggingface-cli` is gone from it)
    assert "`hf download laion/clap-htsat-unfused" in str(err.value)
    import importlib.metadata as md

    scripts = {e.name for e in md.distribution("huggingface_hub").entry_points if e.group == "console_scripts"}
    assert "hf" in scripts


def test_random_checkpoint_roundtrip_through_cache(tmp_path, monkeypatch):
    """A random PANNs checkpoint in the published layout ({'model': ...} with extra heads)."""
    from soundseek.experts import panns

    ref = panns.build_cnn14(random_init=True)
    state = dict(ref.model.state_dict())
    state["fc_audioset.weight"] = torch.zeros(527, 2048)  # extras the published file carries
    state["logmel_extractor.melW"] = torch.zeros(513, 64)
    dest = W.default_path("panns-cnn14")
    dest.parent.mkdir(parents=True)
    torch.save({"model": state, "iteration": 0}, dest)
    published = replace(W.WEIGHTS["panns-cnn14"], md5=None, sha256=sha256(dest))
    monkeypatch.setitem(W.WEIGHTS, "panns-cnn14", published)

    loaded = panns.build_cnn14()  # no weights= : resolved from $SOUNDSEEK_CACHE
    assert loaded.weights_path == str(dest) and loaded.key == "panns-cnn14@1"
    wave = (0.1 * np.random.default_rng(0).standard_normal(32000)).astype(np.float32)
    np.testing.assert_array_equal(loaded.embed_one(wave).frames, ref.embed_one(wave).frames)
    assert W.status("panns-cnn14") == "cached"

    dest.write_bytes(dest.read_bytes()[:-10] + b"0123456789")  # corrupt it
    import os

    os.utime(dest, (1, 1))
    with pytest.raises(W.WeightsError) as err:
        panns.build_cnn14()
    assert "checksum mismatch" in str(err.value) and str(dest) in str(err.value)
    assert W.WEIGHTS["panns-cnn14"].url in str(err.value)


def test_local_weights_file_is_checked(tmp_path, monkeypatch):
    from soundseek.experts.vggish import VGGishExpert

    ckpt = tmp_path / "elsewhere" / "vggish.pth"
    ref = save_vggish(ckpt)
    with pytest.raises(W.WeightsError, match="checksum mismatch"):  # not the published 10086976...
        VGGishExpert(weights=str(ckpt))
    monkeypatch.setitem(W.WEIGHTS, "vggish", replace(W.WEIGHTS["vggish"], sha256=sha256(ckpt)[:8]))
    loaded = VGGishExpert(weights=str(ckpt))
    wave = (0.1 * np.random.default_rng(1).standard_normal(16000)).astype(np.float32)
    np.testing.assert_array_equal(loaded.embed_one(wave).frames, ref.embed_one(wave).frames)
    with pytest.raises(W.WeightsError, match="not found"):
        VGGishExpert(weights=str(tmp_path / "nope.pth"))


def test_md5_mismatch_is_reported(tmp_path):
    dest = W.default_path("panns-resnet38")
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"not a checkpoint")
    with pytest.raises(W.WeightsError) as err:
        W.verify("panns-resnet38")
    assert "md5" in str(err.value) and "bf12f36aaabac4e0855e22d3c3239c1b" in str(err.value)


def test_unknown_checksum_is_recorded_on_first_use_then_enforced():
    assert W.WEIGHTS["passt"].sha256 is None and W.WEIGHTS["passt"].md5 is None
    dest = W.default_path("passt")
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"first version")
    assert W.verify("passt")["checked"] == "first-use"
    assert W.verify("passt")["checked"] == "recorded"
    dest.write_bytes(b"tampered")
    with pytest.raises(W.WeightsError, match="recorded at first download"):
        W.verify("passt")


def test_download_is_atomic_and_verified(tmp_path, monkeypatch):
    monkeypatch.delenv("SOUNDSEEK_OFFLINE")
    src = tmp_path / "published.pth"
    save_vggish(src)
    good = replace(W.WEIGHTS["vggish"], url=src.as_uri(), sha256=sha256(src))
    monkeypatch.setitem(W.WEIGHTS, "vggish", good)
    path = W.download("vggish", progress=False)
    assert path == W.default_path("vggish") and sha256(path) == sha256(src)
    assert [p.name for p in path.parent.iterdir() if ".part" in p.name] == []
    # a wrong checksum leaves nothing behind in the cache
    monkeypatch.setitem(W.WEIGHTS, "vggish", replace(good, sha256="0" * 64))
    with pytest.raises(W.WeightsError, match="checksum mismatch"):
        W.download("vggish", force=True, progress=False)
    assert [p.name for p in path.parent.iterdir() if ".part" in p.name] == []
    # an unreachable URL names the URL and where to put the file
    monkeypatch.setitem(W.WEIGHTS, "vggish", replace(good, url=(tmp_path / "missing.pth").as_uri()))
    path.unlink()
    with pytest.raises(W.WeightsError) as err:
        W.download("vggish", progress=False)
    assert "missing.pth" in str(err.value) and str(W.default_path("vggish")) in str(err.value)


def test_only_plain_tensor_checkpoints_are_loaded(tmp_path):
    bad = tmp_path / "pickled.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "obj": np.random.default_rng(0)}, bad)
    with pytest.raises(W.WeightsError, match="weights_only"):
        W.load_state_dict(bad)


def test_numpy_training_state_in_a_checkpoint_is_accepted(tmp_path):
    """PANNs' released files also carry their sampler state (numpy arrays): data, not code."""
    ckpt = tmp_path / "with_sampler.pth"
    sampler = {"queue": np.arange(5), "state": np.random.RandomState(0).get_state(), "x": np.float64(2.0)}
    torch.save({"model": {"w": torch.ones(2)}, "iteration": 7, "sampler": sampler}, ckpt)
    assert list(W.load_state_dict(ckpt, key="model")) == ["w"]


def test_wrong_architecture_is_rejected(tmp_path, monkeypatch):
    from soundseek.experts.vggish import VGGishExpert

    ckpt = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(3, 3)}, ckpt)
    monkeypatch.setitem(W.WEIGHTS, "vggish", replace(W.WEIGHTS["vggish"], sha256=sha256(ckpt)))
    with pytest.raises(W.WeightsError, match="does not fit"):
        VGGishExpert(weights=str(ckpt))


def test_hf_text_expert_loads_from_a_local_directory(tmp_path):
    from soundseek.experts.hf_text import HFTextConfig, HFTextExpert

    tiny = HFTextConfig("bert-base", "bert", 32, 2, 2, 64, 300, 64, "cls", max_length=64)
    ref = HFTextExpert(tiny, random_init=True)
    ref.model.save_pretrained(tmp_path / "bert")
    ref.tokenizer.save_pretrained(tmp_path / "bert")
    loaded = HFTextExpert(tiny, weights=str(tmp_path / "bert"))
    texts = ["a dog barks", "rain"]
    np.testing.assert_allclose(loaded.encode(texts).sentence, ref.encode(texts).sentence, atol=1e-6)
    with pytest.raises(W.WeightsError, match="config.json"):
        HFTextExpert(tiny, weights=str(tmp_path))


def cli():
    from soundseek.experts.cli import register

    app = typer.Typer()
    register(app)

    @app.command()
    def version() -> None:  # a second command so `models` stays a sub-command
        pass

    return app


def test_cli_list_download_verify(monkeypatch):
    from soundseek.experts import available

    runner = CliRunner()
    res = runner.invoke(cli(), ["models", "list"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    for entry in available():
        assert entry.name in res.output
    assert "not downloaded" in res.output

    res = runner.invoke(cli(), ["models", "download", "panns-cnn14"])
    assert res.exit_code == 1 and "zenodo.org/record/3987831" in res.output

    dest = W.default_path("passt")
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"some weights")
    res = runner.invoke(cli(), ["models", "verify", "passt"])
    assert res.exit_code == 0 and hashlib.sha256(b"some weights").hexdigest() in res.output
    from soundseek.experts.cli import expert_rows

    assert {r["name"]: r["status"] for r in expert_rows(probe_packaged=False)}["passt"] == "cached"


def test_clap_towers_load_from_a_full_clap_checkpoint(tmp_path):
    """The published repo holds a whole ClapModel; each tower must load from it and agree with it."""
    from transformers import ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapTextConfig

    from soundseek.experts.clap import ClapAudioExpert, ClapTextExpert
    from soundseek.experts.hf_text import offline_tokenizer

    torch.manual_seed(0)
    audio = ClapAudioConfig(patch_embeds_hidden_size=16, hidden_size=128, depths=[1, 1, 1, 1],
                            num_attention_heads=[1, 2, 4, 8], projection_hidden_size=64)
    text = ClapTextConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                          projection_hidden_size=64)
    full = ClapModel(ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16)).eval()
    full.save_pretrained(tmp_path / "clap")
    fe = ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad")
    fe.save_pretrained(tmp_path / "clap")
    offline_tokenizer("roberta", 77).save_pretrained(tmp_path / "clap")

    a = ClapAudioExpert(weights=str(tmp_path / "clap"))
    assert a.dim == 16  # read from the checkpoint config, not assumed
    wave = (0.1 * np.random.default_rng(0).standard_normal(48000 * 3)).astype(np.float32)
    feats = fe([wave], sampling_rate=48000, return_tensors="pt")
    with torch.inference_mode():
        ref = full.get_audio_features(input_features=feats["input_features"])
    ref = getattr(ref, "pooler_output", ref)  # tensor in older transformers, output object in newer
    np.testing.assert_allclose(a.embed_one(wave).pooled, torch.nn.functional.normalize(ref, dim=-1)[0].numpy(),
                               atol=1e-5)

    t = ClapTextExpert(weights=str(tmp_path / "clap"))
    batch = t.tokenizer(["a dog barks"], return_tensors="pt")
    with torch.inference_mode():
        ref_t = full.get_text_features(**batch)
    ref_t = getattr(ref_t, "pooler_output", ref_t)
    np.testing.assert_allclose(t.encode(["a dog barks"]).sentence[0],
                               torch.nn.functional.normalize(ref_t, dim=-1)[0].numpy(), atol=1e-5)
