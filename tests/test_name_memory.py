"""The name memory: a library's names lift the unnamed files that sound like them (issue 18)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED, needs_shared
from soundseek.index.name_memory import (MEMORY_FILE, MemorySlot, NameMemory, build_memory, centred_embeddings,
                                         file_embeddings)


def unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def toy_memory(**kw) -> NameMemory:
    # files 0,1 sound alike (named "dog" / unnamed), files 2,3 alike (named "rain" / unnamed)
    emb = unit([[1, 0.1, 0], [1, 0, 0.1], [0, 1, 0.1], [0.1, 1, 0]])
    captions = unit([[1, 0, 0, 0], [0, 1, 0, 0]])  # sentence vectors of "dog", "rain"
    return build_memory(np.array([10, 11, 12, 13]), emb, np.array([0, -1, 1, -1]), captions, k=1, **kw)


def test_each_file_remembers_its_nearest_named_file_never_itself():
    mem = toy_memory()
    assert mem.neighbors[:, 0].tolist() == [1, 0, 0, 1]  # named files get the *other* name
    assert np.allclose(mem.weights.sum(1), 1.0)


def test_bonus_only_for_queries_worded_like_a_name():
    mem = toy_memory(threshold=0.5, weight=4.0)
    dog = np.array([0.9, 0.1, 0.3, 0.0])  # cosine to "dog" 0.94
    b = mem.bonus(dog)
    assert b[1] == pytest.approx(4.0 * (0.9 / np.linalg.norm(dog) - 0.5), rel=1e-5)  # unnamed dog-like file
    assert b[0] == 0 and b[3] == 0  # neighbours named "rain"
    assert b[2] == pytest.approx(b[1])  # the "rain" file's only other named file is the dog
    far = np.array([0.0, 0.0, 0.0, 1.0])  # reads like no caption: ranking untouched
    assert not mem.bonus(far).any()
    ranked = [(12, 0.5, 7, 0.0, 1.0), (11, 0.4, 3, 0.0, 1.0)]
    assert mem.rerank(ranked, far, 2) == ranked
    # the unnamed dog recording now comes first; a file the content ranking did not reach enters
    # with the lowest content score it holds (no window)
    top = mem.rerank([(12, 0.5, 7, 0.0, 1.0), (13, 0.45, 8, 0.0, 1.0)], dog, 3)
    assert [r[0] for r in top] == [12, 11, 13] and top[1][2] is None and top[1][1] == pytest.approx(0.45 + b[1])
    assert top[2] == (13, 0.45, 8, 0.0, 1.0)
    assert [r[0] for r in mem.rerank([(12, 0.5, 7, 0.0, 1.0)], dog, 3, allow={12})] == [12]  # filters hold


def test_file_embeddings_average_unit_windows():
    wins = np.array([[2.0, 0], [0, 3.0], [0, 1.0]])
    e = file_embeddings(wins, np.array([0, 2]))
    assert np.allclose(e, [[2 ** -0.5, 2 ** -0.5], [0, 1]])


def test_neighbours_from_every_space_share_the_weight():
    # file 1 (unnamed) sounds like the dog (file 0) in one space and like the rain (file 2) in the other
    a = unit([[1, 0.1, 0], [1, 0, 0.1], [0, 1, 0.1], [0.1, 1, 0]])
    b = unit([[1, 0.1, 0], [0, 1, 0], [0, 1, 0.1], [0.1, 1, 0]])
    captions = unit([[1, 0, 0, 0], [0, 1, 0, 0]])
    mem = build_memory(np.array([10, 11, 12, 13]), [a, b], np.array([0, -1, 1, -1]), captions, k=1)
    assert mem.neighbors.shape == (4, 2)
    assert mem.neighbors[1].tolist() == [0, 1] and np.allclose(mem.weights[1], [0.5, 0.5])
    assert mem.neighbors[3].tolist() == [1, 1] and np.allclose(mem.weights.sum(1), 1.0)
    dog = np.array([1.0, 0, 0, 0])
    assert mem.bonus(dog)[1] == pytest.approx(0.5 * toy_memory().bonus(dog)[1])  # half the evidence


def test_centred_embeddings_ignore_what_every_file_shares():
    v = np.array([[10.0, 1, 0], [10.0, 0, 1], [10.0, 0.9, 0.1]])
    e = centred_embeddings(v)
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0)
    sim = e @ e.T
    assert sim[2, 0] > 0.9 and sim[2, 1] < 0  # raw cosines are all above 0.99


def test_memory_for_hears_the_expert_features_too():
    from types import SimpleNamespace

    from soundseek.adapt.memory import MemoryConfig, memory_for, sound_spaces

    # model space: file 1 sounds like the dog (file 0); expert features: like the rain (file 2)
    wins = unit([[1, 0.1, 0], [1, 0, 0.1], [0, 1, 0.1], [0.1, 1, 0]])
    frames = [[5, 1, 0], [5, 0, 1], [5, 0, 1.1], [5, 1, 0.1]]
    files = [SimpleNamespace(item_id=10 + i, windows=[np.array([fr, fr], dtype=np.float32)]) for i, fr in enumerate(frames)]
    caption_of, captions = np.array([0, -1, 1, -1]), unit([[1, 0, 0, 0], [0, 1, 0, 0]])
    starts = np.arange(4)
    two = MemoryConfig(k=1, spaces=("model", "features"))
    both = memory_for(None, files, caption_of, captions, two, windows=(wins, starts))
    assert both.neighbors[1].tolist() == [0, 1] and both.weight == MemoryConfig().weight
    model_only = memory_for(None, files, caption_of, captions, MemoryConfig(k=1, spaces=("model",)), (wins, starts))
    assert model_only.neighbors[1].tolist() == [0]
    # the shipped space: aisfx's mean embeddings (given here: file 1 sounds like the rain)
    sfx = np.array([[0, 5, 1], [1, 0, 5], [1, 0, 6], [0, 6, 1]], dtype=np.float32)
    assert MemoryConfig().spaces == ("sfx",)
    shipped = memory_for(None, files, caption_of, captions, MemoryConfig(k=1), (wins, starts), sfx=sfx)
    assert shipped.neighbors[1].tolist() == [1] and shipped.weights[1].tolist() == [1.0]
    with pytest.raises(ValueError, match="sound space"):
        sound_spaces(files, wins, starts, MemoryConfig(spaces=("loudness",)))
    with pytest.raises(ValueError, match="aisfx"):
        sound_spaces(files, wins, starts, MemoryConfig())  # the sfx space without its vectors


def test_a_file_the_space_could_not_hear_takes_no_neighbours_and_is_nobodys():
    # file 3 (named) and file 1 (unnamed) could not be read when adapt listened: NaN rows
    sfx = np.array([[1, 0, 0], [np.nan] * 3, [0.9, 0.1, 0], [np.nan] * 3, [0, 1, 0]], dtype=np.float32)
    e = centred_embeddings(sfx)
    assert np.isfinite(e).all() and not e[1].any() and not e[3].any()
    assert np.allclose(np.linalg.norm(e[[0, 2, 4]], axis=1), 1.0)
    captions = unit([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])
    mem = build_memory(np.arange(5), e, np.array([0, -1, -1, 2, 1]), captions, k=2)
    assert (mem.neighbors[1] == -1).all() and not mem.weights[1].any()  # unheard: no neighbours
    assert 2 not in mem.neighbors  # the unheard named file lends its name to nobody
    assert mem.bonus(np.array([0, 0, 1.0, 0])).tolist() == [0.0] * 5
    assert mem.neighbors[2, 0] == 0 and mem.bonus(np.array([1.0, 0, 0, 0]))[2] > 0


def test_save_load_and_damage(tmp_path):
    mem = toy_memory()
    mem.fingerprint = "abc"
    p = mem.save(tmp_path / MEMORY_FILE)
    back = NameMemory.load(p)
    assert back.fingerprint == "abc" and np.array_equal(back.neighbors, mem.neighbors)
    assert not list(tmp_path.glob("*.tmp"))
    p.write_bytes(b"garbage" * 100)
    with pytest.raises(ValueError, match="soundseek adapt"):
        NameMemory.load(p)


def test_slot_follows_the_file_and_the_model(tmp_path):
    fp = {"now": "model-a"}
    slot = MemorySlot(tmp_path, lambda: fp["now"])
    assert slot.current() is None
    mem = toy_memory()
    mem.fingerprint = "model-a"
    mem.save(tmp_path / MEMORY_FILE)
    assert slot.current() is not None
    fp["now"] = "model-b"  # the index serves another model: the memory no longer fits its vectors
    assert slot.current() is None and "another model" in slot.problem
    fp["now"] = "model-a"
    (tmp_path / MEMORY_FILE).write_bytes(b"x")
    assert slot.current() is None and "not a name memory" in slot.problem
    (tmp_path / MEMORY_FILE).unlink()
    assert slot.current() is None and slot.problem is None
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # reading wrote nothing


# -- end to end on real corpus files ------------------------------------------------------------
WIDELANDS = SHARED / "data" / "sfx-corpus" / "audio" / "widelands" / "widelands" / "data" / "sound"


def wolf_library(tmp_path: Path, **create):
    """An index of widelands' animals and farm folders, one wolf renamed ZOOM0001.OGG: a new
    recording of a kind the library names."""
    from soundseek import Index

    lib = tmp_path / "lib"
    for folder in ("animals", "farm"):
        shutil.copytree(WIDELANDS / folder, lib / folder)
    (lib / "animals" / "wolf_01.ogg").rename(lib / "ZOOM0001.OGG")
    idx = Index.create(tmp_path / "idx", **create)
    assert not idx.add(lib, progress=False).failed
    return idx


#: adapt settings for the small wolf library: two epochs, and an adapted model that is never kept
SMALL = dict(epochs=2, min_named_files=10, min_groups=4, min_gain=5.0)


def adapt_keeping_memory(idx, **memory):
    """``adapt_and_install`` on ``idx`` with SMALL settings and a memory its check always keeps."""
    from soundseek.adapt import AdaptConfig
    from soundseek.adapt.apply import adapt_and_install
    from soundseek.adapt.memory import MemoryConfig

    return adapt_and_install(idx, AdaptConfig(memory=MemoryConfig(min_gain=-1.0, max_loss=1.0, **memory), **SMALL),
                             progress=False)


@pytest.mark.slow
@needs_shared("data/sfx-corpus")
def test_index_serves_the_memory_for_named_words_only(tmp_path):
    from soundseek import Index
    from soundseek.adapt import AdaptConfig
    from soundseek.adapt.library import collect_library
    from soundseek.adapt.memory import check_memory, memory_for
    from soundseek.adapt.trainer import caption_vectors
    from soundseek.features.sfx import sfx_vectors
    from soundseek.models import load_model

    idx = wolf_library(tmp_path)
    model = load_model(idx.model_spec)
    files = collect_library(idx)
    caps = sorted({f.caption.text for f in files if f.named})
    row = {c: i for i, c in enumerate(caps)}
    caption_of = np.array([row[f.caption.text] if f.named else -1 for f in files])
    sfx = sfx_vectors([f.path for f in files])  # aisfx on the real files
    assert sfx.shape == (len(files), 512) and np.isfinite(sfx).all()
    mem = memory_for(model, files, caption_of, caption_vectors(model, caps), AdaptConfig().memory,
                     fingerprint=idx.model_fingerprint(), sfx=sfx)

    def ranks(q):
        return [Path(h.path).name for h in idx.search(q, k=len(files), mode="content", group=False)]

    before = {q: ranks(q) for q in ("wolf", "a car engine starting")}
    hybrid = [h.path for h in idx.search("wolf", k=10, mode="hybrid", group=False)]
    idx.set_name_memory(mem)
    # where words match (the named wolves), hybrid ranks as without the memory
    assert [h.path for h in idx.search("wolf", k=10, mode="hybrid", group=False)] == hybrid
    assert (Path(idx.path) / MEMORY_FILE).is_file() and idx.name_memory.current() is not None
    after = {q: ranks(q) for q in before}
    assert after["a car engine starting"] == before["a car engine starting"]  # reads like no name
    assert after["wolf"].index("ZOOM0001.OGG") < before["wolf"].index("ZOOM0001.OGG")
    assert after["wolf"].index("ZOOM0001.OGG") <= 2

    # a reopened index (another process) serves it too; removing it gives the content ranking back
    idx.close()
    idx = Index.open(tmp_path / "idx")
    assert ranks("wolf") == after["wolf"]
    idx.set_name_memory(None)
    assert ranks("wolf") == before["wolf"]

    named_idx = np.flatnonzero(caption_of >= 0)
    chk = check_memory(model, files, named_idx, caption_of[named_idx], caption_vectors(model, caps),
                       AdaptConfig().memory, sfx=sfx)
    assert set(chk) == {"spaces", "seen_kinds", "unseen_kinds", "kept", "reason"}
    for q in ("seen_kinds", "unseen_kinds"):
        assert chk[q]["files"] > 0 and 0.0 <= chk[q]["memory"]["map"] <= 1.0
    # a small library is asked on more splits (12, not 3): one file moving a rank must not decide
    assert chk["seen_kinds"]["splits"] == chk["unseen_kinds"]["splits"] == 12, chk
    assert f"({chk['seen_kinds']['files']} files x 12 splits" in chk["reason"], chk["reason"]  # what it rests on
    from dataclasses import replace

    few = check_memory(model, files, named_idx, caption_of[named_idx], caption_vectors(model, caps),
                       replace(AdaptConfig().memory, held_files_target=1), sfx=sfx)
    assert few["seen_kinds"]["splits"] == few["unseen_kinds"]["splits"] == 3
    idx.close()


@pytest.mark.slow
@needs_shared("data/sfx-corpus")
def test_adapt_installs_the_memory_only_when_its_check_keeps_it_and_revert_removes_it(tmp_path):
    from soundseek.adapt import AdaptConfig
    from soundseek.adapt.apply import adapt_and_install, adaptation_state, describe, revert
    from soundseek.adapt.memory import MemoryConfig

    idx = wolf_library(tmp_path)
    memory_file = Path(idx.path) / MEMORY_FILE
    small = dict(epochs=2, min_named_files=10, min_groups=4, min_gain=5.0)  # the adapter is never kept here

    report = adapt_and_install(idx, AdaptConfig(memory=MemoryConfig(min_gain=-1.0, max_loss=1.0), **small),
                               progress=False)
    assert not report.kept and report.check["memory"]["kept"] and "name memory kept" in report.reason
    assert memory_file.is_file() and idx.name_memory.current() is not None
    assert NameMemory.load(memory_file).fingerprint == idx.model_fingerprint()  # the base model's vectors
    assert any(line.startswith("name memory in use (sounds alike by aisfx): seen kinds")
               for line in describe(adaptation_state(idx)))
    assert any("'seen kinds' = named files whose names were hidden" in line  # what the numbers mean
               for line in describe(adaptation_state(idx)))

    revert(idx)
    assert not memory_file.exists() and idx.name_memory.current() is None
    assert any(line.startswith("name memory not in use") for line in describe(adaptation_state(idx)))

    report = adapt_and_install(idx, AdaptConfig(memory=MemoryConfig(min_gain=10.0, max_loss=-1.0), **small),
                               progress=False)
    assert not report.check["memory"]["kept"] and not memory_file.exists()
    report = adapt_and_install(idx, AdaptConfig(memory=MemoryConfig(enabled=False), **small), progress=False)
    assert "memory" not in report.check and not memory_file.exists()
    idx.close()


@pytest.mark.slow
@needs_shared("data/sfx-corpus")
def test_adapt_listens_with_aisfx_and_falls_back_without_it(tmp_path, monkeypatch):
    import soundseek.features.sfx as sfx_mod

    idx = wolf_library(tmp_path)
    heard = []
    real = sfx_mod.sfx_vectors
    monkeypatch.setattr(sfx_mod, "sfx_vectors", lambda *a, **k: heard.append(len(a[0])) or real(*a, **k))
    report = adapt_keeping_memory(idx)
    assert report.check["memory"]["spaces"] == ["sfx"] and heard == [len(idx.items())]
    assert idx.name_memory.current() is not None
    monkeypatch.setattr(sfx_mod, "sfx_available", lambda: False)  # aisfx not installed
    report = adapt_keeping_memory(idx)
    assert report.check["memory"]["spaces"] == ["model", "features"] and len(heard) == 1
    assert "aisfx is not installed" in report.check["memory"]["reason"]
    assert idx.name_memory.current() is not None
    from soundseek.index.name_memory import ANCHORS_FILE, MemoryAnchors

    anchors = MemoryAnchors.load(Path(idx.path) / ANCHORS_FILE)  # files indexed later join by the expert's frames
    assert anchors.space == "features" and anchors.expert_key == idx.embedder.feature_key
    idx.close()


def test_sfx_vectors_read_stored_aisfx_columns_and_mark_unreadable_files(tmp_path):
    from soundseek.features.sfx import sfx_vectors, stored_sfx

    means = np.arange(2 * 1536, dtype=np.float32).reshape(2, 1536)
    paths = [str(tmp_path / "gone.wav"), str(tmp_path / "also-gone.wav")]
    got = sfx_vectors(paths, means, "yamnet+aisfx")  # the quality profile stores aisfx's part: nothing decoded
    assert got.shape == (2, 512) and np.array_equal(got, means[:, 1024:])
    assert stored_sfx(means, "yamnet") is None
    missing = sfx_vectors(paths, means, "yamnet")  # decodes: the files are gone
    assert missing.shape == (2, 512) and np.isnan(missing).all()


def test_anchors_written_before_the_sfx_space_load_as_features(tmp_path):
    from soundseek.index.name_memory import MemoryAnchors

    vecs = unit([[1.0, 0, 0], [0, 1.0, 0]]).astype(np.float16)
    np.savez(tmp_path / "a.npz", vectors=vecs, caption_rows=np.array([0, 1], np.int32),
             centre=np.zeros(3, np.float32), expert_key=np.array("yamnet@1"), k=np.int32(5),
             temperature=np.float32(0.05))  # no "space": an older adapt
    a = MemoryAnchors.load(tmp_path / "a.npz")
    assert a.space == "features" and a.expert_key == "yamnet@1"
    nb, w = a.neighbours(np.array([[0.9, 0.1, 0], [np.nan] * 3], np.float32))
    assert nb[0, 0] == 0 and (nb[1] == -1).all() and not w[1].any()  # a file not heard: no neighbours
    a.space = "elsewhere"
    a.save(tmp_path / "b.npz")
    with pytest.raises(ValueError, match="unknown sound space"):
        MemoryAnchors.load(tmp_path / "b.npz")


@pytest.mark.slow
@needs_shared("data/esc50-fold1")
def test_check_finds_a_damaged_memory_and_repair_removes_it(tmp_path):
    from soundseek import Index
    from soundseek.index.maintenance.check import check
    from soundseek.index.maintenance.repair import repair

    audio = SHARED / "data" / "esc50-fold1" / "audio"
    lib = tmp_path / "lib"
    lib.mkdir()
    for f in sorted(audio.glob("*.flac"))[:4]:
        shutil.copy(f, lib / f.name)
    idx = Index.create(tmp_path / "idx")
    idx.add(lib, progress=False)
    mem = toy_memory()
    mem.fingerprint = idx.model_fingerprint()  # the model in use: nothing to say
    idx.set_name_memory(mem)
    rep = check(tmp_path / "idx")
    assert rep.ok and not any("another model" in n for n in rep.notes), rep.notes
    mem.fingerprint = "another model"
    idx.set_name_memory(mem)
    idx.close()
    rep = check(tmp_path / "idx")
    assert rep.ok and any("another model" in n for n in rep.notes)
    (tmp_path / "idx" / MEMORY_FILE).write_bytes(b"\x00" * 64)
    rep = check(tmp_path / "idx")
    assert not rep.ok and any(MEMORY_FILE in p and "damaged" in p for p in rep.problems)
    fixed = repair(tmp_path / "idx")
    assert any(MEMORY_FILE in f for f in fixed.fixed) and not fixed.remaining
    assert not (tmp_path / "idx" / MEMORY_FILE).exists() and check(tmp_path / "idx").ok


def test_verdict_keeps_a_harmless_memory_when_the_seen_kinds_leave_no_room_to_gain():
    """widelands `files` fold 1 (benchmarks/results/adapt_library-2026-12-06-two-spaces.json):
    3 names with 7 held-out files, found perfectly without the memory (mAP 1.000 -> 1.000), so no
    gain could show; unseen kinds 0.506 -> 0.505.  The old rule discarded the memory there."""
    from soundseek.adapt.memory import MemoryConfig, memory_verdict

    cfg = MemoryConfig()

    def q(base, mem):
        return {"base": {"map": base}, "memory": {"map": mem}}

    kept, note = memory_verdict(q(1.0, 1.0), q(0.506, 0.505), cfg)
    assert kept and "found without it" in note
    assert not memory_verdict(q(1.0, 1.0), q(0.506, 0.48), cfg)[0]  # no room to gain, and it costs
    assert memory_verdict(q(0.6, 0.9), q(0.4, 0.39), cfg) == (True, "")  # the usual rule
    assert not memory_verdict(q(0.6, 0.605), q(0.4, 0.4), cfg)[0]  # a gain below min_gain
    assert not memory_verdict(q(0.6, 0.9), q(0.4, 0.36), cfg)[0]  # a loss above max_loss
    assert memory_verdict(None, q(0.4, 0.4), cfg) == (False, "")
    assert not memory_verdict(q(1.0, 0.4), q(0.5, 0.5), cfg)[0]  # no room to gain, and it loses seen kinds
    assert not memory_verdict(q(1.0, 1.0), None, cfg)[0]  # nothing checks the unseen kinds


def test_grow_memory_gives_new_files_their_nearest_named_files_by_their_own_frames():
    from soundseek.index.name_memory import MemoryAnchors, grow_memory

    mem = toy_memory()  # 4 files, k=1 (width 1), captions "dog", "rain"
    centre = np.array([0.5, 0.5, 0.0], dtype=np.float32)
    anchors = MemoryAnchors(unit([[1, -1, 0.1], [-1, 1, 0.1]]).astype(np.float16), np.array([0, 1]), centre,
                            "yamnet@1", k=1)
    grown = grow_memory(mem, anchors, [20, 21], np.array([[1.4, 0.5, 0.0], [0.5, 1.6, 0.1]]))
    assert grown.item_ids.tolist() == [10, 11, 12, 13, 20, 21]
    assert grown.neighbors[4:, 0].tolist() == [0, 1]  # centred: 20 sounds like the dog, 21 like rain
    assert np.array_equal(grown.neighbors[:4], mem.neighbors) and np.allclose(grown.weights[4:].sum(1), 1.0)
    assert grow_memory(mem, anchors, [], np.zeros((0, 3))) is mem
    kept = grown.rows(np.isin(grown.item_ids, [10, 12, 20]))  # 11, 13, 21 removed from the index
    assert kept.item_ids.tolist() == [10, 12, 20] and kept.neighbors[:, 0].tolist() == [
        grown.neighbors[0, 0], grown.neighbors[2, 0], grown.neighbors[4, 0]]
    assert np.array_equal(kept.captions, grown.captions)
    wide = build_memory(np.array([10, 11, 12, 13]), [unit(np.eye(4, 3) + 0.1)] * 2, np.array([0, -1, 1, -1]),
                        unit([[1, 0, 0, 0], [0, 1, 0, 0]]), k=1)  # two spaces: width 2, padded
    g = grow_memory(wide, anchors, [20], np.array([[1.4, 0.5, 0.0]]))
    assert g.neighbors[-1].tolist() == [0, -1] and g.weights[-1].tolist() == [1.0, 0.0]


def test_new_named_files_become_anchors_that_later_files_can_take_as_neighbours():
    from soundseek.index.name_memory import MemoryAnchors, add_anchors, grow_memory

    mem = toy_memory()  # captions "dog" (row 0), "rain" (row 1) as unit 4-d vectors
    centre = np.array([0.5, 0.5, 0.0], dtype=np.float32)
    anchors = MemoryAnchors(unit([[1, -1, 0.1], [-1, 1, 0.1]]).astype(np.float16), np.array([0, 1]), centre,
                            "yamnet@1", k=1)
    # two files named after `adapt`: one called "dog" again (a caption the memory has), one "bell"
    bell = np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float32)
    grown_mem, grown = add_anchors(mem, anchors, np.array([[1.5, 0.4, 0.0], [0.5, 0.5, 2.0]]),
                                   np.stack([mem.captions[0] * 3.0, bell]))
    assert grown.caption_rows.tolist() == [0, 1, 0, 2]  # the dog's caption is shared, the bell's appended
    assert len(grown_mem.captions) == 3 and np.allclose(grown_mem.captions[2], bell)
    assert np.allclose(np.linalg.norm(grown.vectors.astype(np.float32), axis=1), 1.0, atol=1e-3)
    assert np.array_equal(grown_mem.item_ids, mem.item_ids)  # rows untouched: only the table grows
    later = grow_memory(grown_mem, grown, [30], np.array([[0.5, 0.6, 1.8]]))  # sounds like the bell
    assert later.neighbors[-1, 0] == 2 and later.bonus(bell)[-1] > 0
    assert grow_memory(mem, anchors, [30], np.array([[0.5, 0.6, 1.8]])).bonus(bell)[-1] == 0  # before: no bell


def test_windowed_mean_is_the_mean_of_the_windows_frames_as_adapt_takes_it():
    """Files indexed after `adapt` join the memory by the same mean frame `adapt` used for the
    named files (overlapping windows count shared frames twice), also for long files."""
    from soundseek.audio import frame_window_masks, time_windows
    from soundseek.experts.base import AudioFeatures
    from soundseek.features import windowed_mean

    rng = np.random.default_rng(0)
    for dur in (3.0, 25.0, 61.3):
        n = int(dur / 0.48) + 1
        feats = AudioFeatures(rng.normal(size=(n, 8)).astype(np.float32), np.zeros(8, np.float32), 0.48, 0.96)
        wins = time_windows(dur, 10.0, 5.0)
        masks = frame_window_masks(feats.frame_times(), feats.window_s, wins, duration_s=dur)
        want = np.concatenate([feats.frames[m] for m in masks]).mean(0)
        assert np.allclose(windowed_mean(feats, wins, dur), want, atol=1e-6), dur


def test_sfx_vectors_hear_only_the_opening_of_a_long_file(tmp_path):
    import soundfile as sf

    from soundseek.experts.registry import get_expert
    from soundseek.features.sfx import sfx_vectors

    sr = 44100
    rng = np.random.default_rng(0)
    t = np.arange(12 * sr) / sr
    wave = np.where(t < 4, 0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * rng.standard_normal(len(t))).astype(np.float32)
    sf.write(tmp_path / "long.wav", wave, sr)
    got = sfx_vectors([str(tmp_path / "long.wav")], max_s=4.0)
    want = np.asarray(get_expert("aisfx").embed([wave[: 4 * sr]])[0].frames).mean(0)
    whole = sfx_vectors([str(tmp_path / "long.wav")], max_s=30.0)[0]
    def cos(a, b):
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    assert cos(got[0], want) > 0.999  # the tone alone: the noise after 4 s was never decoded
    assert cos(whole, want) < 0.99  # (bf16 network, 16-bit file: not bit for bit)


@pytest.mark.slow
@needs_shared("data/sfx-corpus")
def test_a_quality_index_gets_the_memory_from_its_stored_aisfx_frames_decoding_nothing(tmp_path, monkeypatch):
    import soundseek.audio.io as audio_io

    idx = wolf_library(tmp_path, profile="quality")  # yamnet+aisfx frames in the feature store

    def no_decoding(*a, **k):
        raise AssertionError("adapt decoded audio on an index that stores aisfx's frames")

    monkeypatch.setattr(audio_io, "stream_audio", no_decoding)
    report = adapt_keeping_memory(idx)
    # the quality model has no heads to tune; the memory and the names are built all the same
    assert not report.kept and "no trained heads" in report.reason and "name memory kept" in report.reason
    assert report.check["memory"]["spaces"] == ["sfx"] and idx.name_memory.current() is not None
    assert idx.name_vectors.current() is not None
    ranked = [Path(h.path).name for h in idx.search("wolf", k=5, mode="content", group=False)]
    assert "ZOOM0001.OGG" in ranked[:3]  # the unnamed wolf, lifted by its neighbours' names
    shutil.copy(WIDELANDS / "animals" / "wolf_02.ogg", tmp_path / "lib" / "ZOOM0002.OGG")
    rep = idx.add(tmp_path / "lib", progress=False)  # a new file joins from its stored frames too
    assert rep.joined_memory == 1 and not rep.adapt_error
    idx.close()


def test_hear_library_reports_unread_files_and_falls_back_when_too_few_named_files_are_heard(monkeypatch):
    from types import SimpleNamespace

    import soundseek.features.sfx as sfx_mod
    from soundseek.adapt.memory import FALLBACK_SPACES, MemoryConfig, hear_library

    files = [SimpleNamespace(path=f"/lib/{i}.wav", named=i < 3) for i in range(5)]
    feats = np.zeros((5, 1024), np.float32)
    rows = np.ones((5, 512), np.float32)
    rows[1] = np.nan  # one named file could not be read
    monkeypatch.setattr(sfx_mod, "sfx_vectors", lambda *a, **k: rows.copy())
    cfg, sfx, note = hear_library(files, feats, MemoryConfig(), "yamnet")
    assert cfg.spaces == ("sfx",) and sfx is not None and "could not read 1 of 5 files (first: /lib/1.wav)" in note
    rows[0] = np.nan  # now only one named file is heard: no neighbours to learn from
    cfg, sfx, note = hear_library(files, feats, MemoryConfig(), "yamnet")
    assert cfg.spaces == FALLBACK_SPACES and sfx is None and "too few named files heard" in note
    monkeypatch.setattr(sfx_mod, "sfx_available", lambda: False)
    cfg, sfx, note = hear_library(files, feats, MemoryConfig(), "yamnet")
    assert cfg.spaces == FALLBACK_SPACES and "pip install --no-deps aisfx" in note
    both = np.ones((5, 1536), np.float32)  # a quality index: aisfx's columns are stored, aisfx not needed
    cfg, sfx, note = hear_library(files, both, MemoryConfig(), "yamnet+aisfx")
    assert cfg.spaces == ("sfx",) and sfx.shape == (5, 512) and note == ""
    assert hear_library(files, feats, MemoryConfig(spaces=("model",)))[1:] == (None, "")


@pytest.mark.slow
@needs_shared("data/sfx-corpus")
def test_a_file_gone_at_adapt_time_is_reported_and_later_files_still_find_neighbours(tmp_path):
    from soundseek.features.sfx import SFX_MAX_S
    from soundseek.index.name_memory import ANCHORS_FILE, MemoryAnchors

    idx = wolf_library(tmp_path)
    (tmp_path / "lib" / "farm" / "sheep_00.ogg").unlink()  # indexed, then gone before adapt
    report = adapt_keeping_memory(idx)
    mem = report.check["memory"]
    assert mem["unheard_files"] == 1 and "could not read 1 of" in mem["reason"] and "sheep_00.ogg" in mem["note"]
    anchors = MemoryAnchors.load(Path(idx.path) / ANCHORS_FILE)
    assert np.isfinite(anchors.centre).all() and anchors.space == "sfx" and anchors.max_s == SFX_MAX_S == 10.0
    shutil.copy(WIDELANDS / "animals" / "wolf_02.ogg", tmp_path / "lib" / "ZOOM0002.OGG")
    rep = idx.add(tmp_path / "lib", progress=False, prune=False)
    assert rep.joined_memory == 1 and not rep.adapt_error
    idx.close()


@pytest.mark.slow
@needs_shared("data/sfx-corpus")
def test_new_files_without_aisfx_are_reported_and_removed_files_still_leave(tmp_path, monkeypatch):
    import soundseek.features.sfx as sfx_mod

    idx = wolf_library(tmp_path)
    adapt_keeping_memory(idx)
    before = idx.name_memory.current()
    monkeypatch.setattr(sfx_mod, "sfx_available", lambda: False)  # the index moved to a machine without aisfx
    shutil.copy(WIDELANDS / "animals" / "wolf_02.ogg", tmp_path / "lib" / "ZOOM0002.OGG")
    (tmp_path / "lib" / "farm" / "sheep_00.ogg").unlink()
    rep = idx.add(tmp_path / "lib", progress=False)
    assert rep.added == 1 and rep.removed == 1 and rep.joined_memory == 0
    assert "aisfx, which is not installed" in rep.adapt_error and "1 new files did not join" in rep.adapt_error
    after = idx.name_memory.current()
    assert len(after.item_ids) == len(before.item_ids) - 1  # the removed sheep left, the new wolf did not join
    rep = idx.add(tmp_path / "lib", progress=False, follow_adapt=False)  # (`index --adapt`: adapt comes next)
    assert rep.adapt_error == "" and rep.joined_memory == 0
    idx.close()


@pytest.mark.slow
@needs_shared("data/sfx-corpus")
def test_an_adapted_index_keeps_its_torch_free_text_side_by_any_path_moved_or_copied(tmp_path, monkeypatch):
    """The text side named the adapted model by the path `adapt` was given ("lib.idx/adapted"),
    so opening the index by another spelling of its path, moving it or copying it (new mtimes)
    sent every text query down the torch path (6 s instead of 0.5 s a query, same results)."""
    from soundseek import Index
    from soundseek.adapt import AdaptConfig
    from soundseek.adapt.apply import adapt_and_install

    idx = wolf_library(tmp_path)
    report = adapt_and_install(idx, AdaptConfig(**{**SMALL, "min_gain": -1.0}), progress=False)  # kept whatever
    assert report.kept and idx.embedder.adapted_dir() is not None
    idx.close()
    monkeypatch.chdir(tmp_path)
    by_relative = Index.open("idx")
    assert by_relative.text_path.fast_side()  # exported by the writer above, by an absolute path
    want = [(h.path, round(h.score, 5)) for h in by_relative.search("a wolf howls", k=5)]
    by_relative.close()

    def same_fast_results(where, **open_kw):
        idx = Index.open(where)
        try:
            assert idx.text_path.fast_side(), where
            got = [(Path(h.path).name, round(h.score, 5)) for h in idx.search("a wolf howls", k=5)]
            assert got == [(Path(p).name, s) for p, s in want]
        finally:
            idx.close()

    same_fast_results(tmp_path / "idx")
    same_fast_results(Path("..") / tmp_path.name / "idx")
    shutil.move(tmp_path / "idx", tmp_path / "moved")
    same_fast_results(tmp_path / "moved")
    shutil.copytree(tmp_path / "moved", tmp_path / "copy", copy_function=shutil.copy)  # new mtimes
    same_fast_results(tmp_path / "copy")

    # the model in the copy retrained in place (same size, other bytes): the text side is stale
    heads = next(p for p in sorted((tmp_path / "copy" / "adapted").rglob("*.safetensors")))
    data = bytearray(heads.read_bytes())
    data[-8:] = bytes(8) if data[-8:] != bytes(8) else b"\x01" * 8
    heads.write_bytes(bytes(data))
    idx = Index.open(tmp_path / "copy")
    assert idx.text_path.fast_side() is False
    idx.close()
