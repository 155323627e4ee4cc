"""Issue 19, defect 3: indexing a long file never holds all its frames, its windows' frames or
its vectors at once, and gives the vectors the (windows x frames) mask computation gave.

The wide test expert of ``test_features_long_memory`` (2048-d frames every 0.1 s: 98 MB of
frames for 20 min of audio) makes the frames dominate memory, so a copy of every window's
frames (2x the frames at 10 s / 5 s windows) shows up in tracemalloc's peak.
"""

from __future__ import annotations

import tracemalloc

import numpy as np

from soundseek import Index
from soundseek.audio import frame_window_masks, time_windows
from soundseek.experts.base import is_frame_file
from soundseek.features import pooled_vector

from test_features_long_memory import WideExpert, _long_file


def _index(tmp_path):
    idx = Index.create(tmp_path / "idx", audio_expert="logmel", model=None)
    idx.expert = WideExpert()
    return idx


def test_index_add_of_a_long_file_is_flat_and_equals_the_mask_vectors(tmp_path):
    path = tmp_path / "long.wav"
    _long_file(path, 20.0)
    frames_bytes = int(1200 / WideExpert.hop_s) * WideExpert.dim * 4  # 98 MB
    with _index(tmp_path) as idx:
        tracemalloc.start()
        try:
            rep = idx.add([path], progress=False)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert rep.added == 1 and not rep.failed
        assert peak < 0.5 * frames_bytes, f"peak {peak / 1e6:.0f} MB for {frames_bytes / 1e6:.0f} MB of frames"

        (item,) = idx.meta.items_by_path().values()
        feats = idx.store.get(item.hash, idx.embedder.feature_key).features
        assert is_frame_file(feats.frames)
        frames = np.asarray(feats.frames).copy()
        wins = time_windows(item.duration, idx.config.window_s, idx.config.hop_s)
        masks = frame_window_masks(feats.frame_times(), feats.window_s, wins, duration_s=wins[-1].end_s)
        wids = sorted(w for w, i, _, _ in idx.meta.all_windows() if i == item.id)
        assert len(wids) == len(wins) == len(idx.vectors.audio)
        for wid, m in zip(wids, masks):
            np.testing.assert_allclose(idx.vectors.audio.reconstruct(wid), pooled_vector(frames[m]), rtol=0, atol=1e-6)

        # query by example of the indexed file pools its mapped frames chunk by chunk: same vector
        whole = pooled_vector(frames)
        np.testing.assert_allclose(idx.embedder.pool_file(feats.frames), whole, rtol=0, atol=1e-5)  # float32 sums
        hits = idx.search_audio(str(path), k=1, exclude_self=False)
        assert hits and hits[0].id == item.id
