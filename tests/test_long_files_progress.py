"""Long recordings (a 1-h podcast, a 20-min field recording) while indexing:

* the progress moves *within* a long file ("reading 2:00/6:00 of pod.wav"), not only when the whole
  file is done (before: "0/1 files" for the whole file, minutes on a 3-h recording);
* each long file is handed to ``on_batch`` (the index's checkpoints) as soon as it is done, so a
  kill loses at most the long file in flight, not every finished long file of its batch;
* the frames scratch file a killed run leaves next to the shards is removed by the next ``index``
  run (before: only ``repair`` removed it; tens of MB per killed hour of audio).
"""

from __future__ import annotations

import numpy as np
import soundfile as sf

from soundseek import Index
from soundseek.experts.base import AudioExpert, AudioFeatures
from soundseek.features import FeatureStore, extract_features
from soundseek.features import extract as extract_mod

SR = 8000


class TinyExpert(AudioExpert):
    """Frame t = RMS of 0.1 s of audio in a fixed 8-d direction (cheap and deterministic)."""

    name, version, sample_rate, dim, hop_s, window_s = "tiny-long-test", "1", SR, 8, 0.1, 0.1

    def embed(self, waves):
        out = []
        hop = int(self.hop_s * SR)
        for w in waves:
            n = max(1, -(-len(w) // hop))
            rms = np.sqrt(np.add.reduceat(np.pad(w, (0, n * hop - len(w))) ** 2, np.arange(0, n * hop, hop)) / hop)
            frames = np.repeat(rms[:, None], self.dim, 1).astype(np.float32)
            out.append(AudioFeatures(frames, frames.mean(0), self.hop_s, self.window_s, 0.0))
        return out


def _tone(path, minutes: float, f0: float = 300.0) -> None:
    t = np.arange(int(minutes * 60 * SR)) / SR
    sf.write(path, (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), SR, subtype="PCM_16")


class _Recorder(extract_mod.ThroughputProgress):
    events: list = []

    def status(self, text, heard_s=None):
        super().status(text, heard_s)
        _Recorder.events.append(("status", text, self.done, self.rate_text(self.done)))

    def advance(self, n, audio_seconds=0.0):
        _Recorder.events.append(("advance", n, self.done, ""))
        super().advance(n, audio_seconds)


def test_progress_moves_within_a_long_file(tmp_path, monkeypatch):
    path = tmp_path / "pod.wav"
    _tone(path, 6.0)
    _Recorder.events = []
    monkeypatch.setattr(extract_mod, "ThroughputProgress", _Recorder)
    extract_features([str(path)], TinyExpert(), store=FeatureStore(tmp_path / "store"), progress=True)
    within = [(text, rate) for kind, text, done, rate in _Recorder.events if kind == "status" and done == 0]
    # segments of 2 min: the position in the file is shown while it is read, against its length
    # (before the name: a narrow terminal cuts the end of the line)
    texts = [t for t, _ in within]
    assert "reading 2:00/6:00 of pod.wav" in texts and "reading 4:00/6:00 of pod.wav" in texts, texts
    # and the speed counts what was heard of it: the only file of the run showed no rate at all
    # (a run's first long file read "1x real time" half-way), now "...x real time"
    rate = dict(within)["reading 4:00/6:00 of pod.wav"]
    assert rate.endswith("x real time") and int(rate.split("x")[0]) >= 5, within


def test_each_long_file_is_handed_on_when_done_not_with_its_whole_batch(tmp_path):
    paths = [tmp_path / f"rec{i}.wav" for i in range(3)]
    for i, p in enumerate(paths):
        _tone(p, 3.5, 200.0 + 100 * i)  # longer than LONG_FILE_S: streamed
    calls = []
    extract_features([str(p) for p in paths], TinyExpert(), store=FeatureStore(tmp_path / "store"),
                     progress=False, batch_files=16, on_batch=lambda done: calls.append([d[0] for d in done]))
    assert calls == [[str(p)] for p in paths]


def test_a_killed_runs_frames_scratch_file_is_removed_by_the_next_index_run(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    _tone(lib / "a.wav", 0.1)
    with Index.create(tmp_path / "idx", audio_expert="logmel", model=None) as idx:
        idx.expert = TinyExpert()
        idx.add(lib, progress=False)
        # what a kill -9 in the middle of a long file leaves behind
        stale = idx.store.scratch_path(idx.embedder.expert.key)
        stale.write_bytes(b"\0" * 4096)
        _tone(lib / "b.wav", 0.1, 500.0)
        rep = idx.add(lib, progress=False)
        assert rep.added == 1
        assert not stale.exists()
        assert not list((tmp_path / "idx").rglob("*.tmp"))


def test_each_long_recording_is_committed_when_done(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(3):  # three: the end-of-run checkpoint alone would also give [.., 2] with two
        _tone(lib / f"rec{i}.wav", 3.5, 200.0 + 100 * i)
    with Index.create(tmp_path / "idx", audio_expert="logmel", model=None) as idx:
        idx.expert = TinyExpert()
        committed = []  # how many items a reader would see at each checkpoint
        real = idx.ingest.checkpoint

        def checkpoint():
            real()
            committed.append(idx.meta.count_items())

        monkeypatch.setattr(idx.ingest, "checkpoint", checkpoint)
        # neither 32 files nor 10 s pass: before, the first recording waited for the second
        rep = idx.add(lib, progress=False, checkpoint_files=32, checkpoint_s=3600)
        assert rep.added == 3
        assert committed[:3] == [1, 2, 3], committed
