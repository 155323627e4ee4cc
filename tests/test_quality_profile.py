"""The quality profile: the composite expert yamnet+aisfx, models over its parts, the shipped
``quality`` model and ``Index.create(profile="quality")`` on real clips."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ESC50, needs_shared

DOG, RAIN, BELLS = "1-100032-A-0.flac", "1-17367-A-10.flac", "1-13571-A-46.flac"  # dog, rain, church bells


def _clip(name):
    return ESC50 / "audio" / name


# -- the composite expert --------------------------------------------------------------------------
def test_align_frames_picks_the_block_whose_centre_is_nearest():
    from soundseek.experts.base import AudioFeatures
    from soundseek.experts.composite import align_frames

    blocks = AudioFeatures(frames=np.arange(3, dtype=np.float32)[:, None], pooled=np.ones(1, np.float32),
                           hop_s=2.0, window_s=2.0, offset_s=0.0)  # centres 1, 3, 5
    times = np.arange(12) * 0.5  # 0.5-s frames: centres 0.25, 0.75, ...
    got = align_frames(blocks, times, 0.5)[:, 0]
    assert got.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert align_frames(blocks, np.array([-5.0, 100.0]), 0.5)[:, 0].tolist() == [0, 2]  # clipped to the ends


def test_composite_parts_layout():
    from soundseek.experts.composite import composite_parts

    assert composite_parts("yamnet+aisfx") == {"yamnet": (0, 1024), "aisfx": (1024, 1536)}
    with pytest.raises(KeyError, match="not a composite"):
        composite_parts("yamnet")


@needs_shared("data/esc50-fold1")
def test_composite_expert_frames_and_pooled_on_a_real_clip():
    from soundseek.audio import load_audio
    from soundseek.experts import get_audio_expert
    from soundseek.experts.composite import align_frames
    from soundseek.experts.tagger import tagger_for

    comp = get_audio_expert("yamnet+aisfx")
    yam, ais = get_audio_expert("yamnet"), get_audio_expert("aisfx")
    assert comp.dim == 1536 and comp.sample_rate == 44100 and comp.hop_s == yam.hop_s == 0.48
    assert comp.key not in (yam.key, ais.key) and yam.key.replace("@", "") in comp.key and ais.key.replace("@", "") in comp.key
    f = comp.embed_one(load_audio(_clip(DOG), comp.sample_rate))
    y = yam.embed_one(load_audio(_clip(DOG), yam.sample_rate))
    a = ais.embed_one(load_audio(_clip(DOG), ais.sample_rate))
    assert f.frames.shape == (len(y.frames), 1536) and f.frames.dtype == np.float32
    assert (f.hop_s, f.window_s, f.offset_s) == (y.hop_s, y.window_s, y.offset_s)
    np.testing.assert_allclose(f.frames[:, :1024], y.frames, atol=1e-3)  # same network, one resampling
    assert len(a.frames) == 3  # 5 s = three ~2.32-s blocks, each repeated over yamnet's frames
    np.testing.assert_allclose(f.frames[:, 1024:], align_frames(a, y.frame_times(), y.window_s), atol=1e-4)
    assert len({row.tobytes() for row in f.frames[:, 1024:]}) == 3
    np.testing.assert_allclose(f.pooled, f.frames.mean(0), rtol=1e-6)
    # tags: yamnet's classifier on the yamnet columns
    tags = tagger_for("yamnet+aisfx").tags(f.frames)
    assert [t.name for t in tags] == [t.name for t in tagger_for("yamnet").tags(y.frames)]
    assert tags[0].name == "Dog"
    assert comp.describe()["parts"] == {"yamnet": [0, 1024], "aisfx": [1024, 1536]}


# -- models over a part ------------------------------------------------------------------------------
def test_expert_part_reads_its_columns_and_round_trips(tmp_path):
    import torch

    from soundseek.models import DualEncoder, load_model
    from soundseek.models.parts import ExpertPart

    torch.manual_seed(0)
    inner = DualEncoder(audio_expert="aisfx", audio_dim=512, embed_dim=32, hidden=16).eval()
    part = ExpertPart.wrap(inner, "yamnet+aisfx")
    assert (part.config.start, part.config.stop) == (1024, 1536) and part.audio_experts == ["yamnet+aisfx"]
    frames, mask = torch.randn(2, 7, 1536), torch.ones(2, 7, dtype=torch.bool)
    with torch.no_grad():
        np.testing.assert_allclose(part.encode_audio(frames, mask), inner.encode_audio(frames[..., 1024:], mask))
        with pytest.raises(ValueError, match="columns up to 1536"):
            part.encode_audio(frames[..., :1024], mask)
        part.save_pretrained(tmp_path / "p")
        assert (tmp_path / "p" / "model" / "model.safetensors").is_file()  # not referenced: saved inside
        again = load_model(tmp_path / "p")
        assert isinstance(again, ExpertPart)
        np.testing.assert_allclose(again.encode_audio(frames, mask), part.encode_audio(frames, mask), atol=1e-6)
        s = torch.randn(3, 384)
        np.testing.assert_allclose(again.export_text_side()(s.numpy()), part.encode_text(s), atol=1e-5)
    with pytest.raises(ValueError, match="no part"):
        ExpertPart.wrap(DualEncoder(audio_expert="panns", audio_dim=8), "yamnet+aisfx")


def test_expert_part_references_a_shipped_model_without_copying_it(tmp_path):
    from soundseek.models import load_model, shipped_model_dir
    from soundseek.models.parts import ExpertPart

    bridge = load_model(shipped_model_dir("default") / "member0")
    part = ExpertPart.wrap(bridge, "yamnet+aisfx", "shipped:default/member0")
    part.save_pretrained(tmp_path / "ref")
    assert sorted(p.name for p in (tmp_path / "ref").iterdir()) == ["config.json"]
    again = load_model(tmp_path / "ref")
    assert again.class_vectors.shape == bridge.class_vectors.shape  # what a query gate reads
    assert json.loads((tmp_path / "ref" / "config.json").read_text())["model"] == "shipped:default/member0"


# -- the shipped quality model -----------------------------------------------------------------------
def test_quality_model_loads_and_its_text_side_runs_without_torch(tmp_path):
    import torch

    from soundseek.models import load_model
    from soundseek.models.parts import ExpertPart
    from soundseek.models.text_side import model_source_stamp

    q = load_model("quality")
    assert q.audio_experts == ["yamnet+aisfx"] and q.text_experts == ["minilm"]
    assert q.config.audio_expert == "yamnet+aisfx" and q.gate is not None
    assert all(isinstance(m, ExpertPart) for m in q.members)
    assert {m.config.part for m in q.members} == {"yamnet", "aisfx"}
    assert abs(float(q.weights.sum()) - 1.0) < 1e-6
    # the default's members are referenced: its files are part of the quality model's stamp
    stamp = [row[0] for row in model_source_stamp("quality")]
    assert any(r.startswith("shipped:default/member0/") for r in stamp)
    x = np.random.default_rng(0).normal(size=(5, 384)).astype(np.float32)
    side = q.export_text_side()
    with torch.no_grad():
        np.testing.assert_allclose(side(x), q.encode_text(torch.from_numpy(x)).numpy(), atol=1e-5)
    side.save(tmp_path)
    code = (
        "import sys, numpy as np; from soundseek.models.text_side import TextSide; "
        f"s = TextSide.load({str(tmp_path)!r}); print(s(np.ones((1, 384), np.float32)).shape[1], "
        "'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [str(side(np.ones((1, 384), np.float32)).shape[1]), "False"]


# -- the index ---------------------------------------------------------------------------------------
def test_profile_cannot_be_mixed_with_an_expert_or_model(tmp_path):
    from soundseek import Index

    with pytest.raises(ValueError, match="either"):
        Index.create(tmp_path / "a", profile="quality", audio_expert="aisfx")
    with pytest.raises(ValueError, match="unknown profile"):
        Index.create(tmp_path / "b", profile="best")


@needs_shared("data/esc50-fold1")
def test_quality_index_searches_three_real_clips(tmp_path):
    from soundseek import Index

    idx = Index.create(tmp_path / "q.idx", profile="quality")
    assert (idx.config.audio_expert, idx.config.model, idx.config.profile) == ("yamnet+aisfx", "quality", "quality")
    report = idx.add([_clip(DOG), _clip(RAIN), _clip(BELLS)], progress=False)
    assert report.failed == [] and report.added == 3
    assert idx.stats()["profile"] == "quality" and idx.stats()["audio_expert"] == "yamnet+aisfx"
    assert idx.stats()["audio_expert_key"].startswith("yamnet+aisfx@")
    names = {"a dog barking": DOG, "rain falling": RAIN, "church bells ringing": BELLS}
    for query, want in names.items():
        hits = idx.search(query, k=3, mode="content")
        assert hits[0].path.endswith(want), (query, [h.path for h in hits])
    assert idx.text_path.fast_state, "the quality model's text side was not served torch-free"
    dog = idx.search("a dog barking", k=1, mode="content")[0]
    assert dog.tags and dog.tags[0].name in ("Dog", "Domestic animals, pets", "Animal")
    # query by example through the composite expert: the clip itself is the best match
    hits = idx.search_audio(str(_clip(RAIN)), k=3, exclude_self=False)
    assert hits[0].path.endswith(RAIN)
    idx.close()
    reopened = Index.open(tmp_path / "q.idx")
    assert reopened.search("a dog barking", k=1, mode="content")[0].path.endswith(DOG)
    reopened.close()


@needs_shared("data/esc50-fold1")
def test_cli_index_profile_quality(tmp_path):
    from typer.testing import CliRunner

    from soundseek.cli import app

    runner = CliRunner()
    idx = str(tmp_path / "idx")
    res = runner.invoke(app, ["index", str(_clip(DOG)), "--index", idx, "--profile", "quality", "--expert", "aisfx"])
    assert res.exit_code == 2 and "either --profile or --expert/--model" in res.output
    res = runner.invoke(app, ["index", str(_clip(DOG)), str(_clip(RAIN)), "--index", idx, "--profile", "quality", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["added"] == 2 and report["profile"] == "quality" and report["model"] == "quality"
    res = runner.invoke(app, ["search", "rain falling", "--index", idx, "--json", "-k", "1", "--mode", "content"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["hits"][0]["path"].endswith(RAIN)
