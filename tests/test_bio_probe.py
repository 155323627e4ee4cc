"""What a bioacoustics probe found (2026-12-07), beside test_index_moves.py (a moved archive) and
test_adapt.py (a recorder app's default name): a bat detector's 192-kHz recording was indexed
without a word, though the model hears nothing above 8 kHz in it."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from conftest import ESC50, esc50_meta, needs_shared
from soundseek import Index
from soundseek.cli import app


def test_an_ultrasound_recording_gets_a_note(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    t = np.arange(2 * 192_000) / 192_000
    sf.write(lib / "bat_pass_01.wav", (0.3 * np.sin(2 * np.pi * 40_000 * t)).astype(np.float32), 192_000)
    sf.write(lib / "dawn_48k.wav", (0.3 * np.sin(2 * np.pi * 440 * t[:96_000])).astype(np.float32), 48_000)
    res = CliRunner().invoke(app, ["index", str(lib), "--index", str(tmp_path / "idx"), "--expert", "logmel",
                                   "--model", "none", "-q", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert [(p.rsplit("/", 1)[-1], hz) for p, hz in report["high_rate"]] == [("bat_pass_01.wav", 192000)]
    res = CliRunner().invoke(app, ["index", str(lib), "--index", str(tmp_path / "idx2"), "--expert", "logmel",
                                   "--model", "none", "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "1 file was recorded at 192 kHz (bat_pass_01.wav): the model listens at 16 kHz, so sounds above 8 kHz" \
        in text and "ultrasound, bat calls" in text
    assert "dawn_48k" not in text


@needs_shared("data/esc50-fold1")
def test_a_date_or_time_typed_alone_finds_the_recordings_named_with_it(tmp_path):
    """Recorders write dates and times into names (``SMM07345_20240512_043000.wav``, an
    AudioMoth's ``20240513_043000.WAV``) and folders (``site_A_2024-05-12``); "20240512" found
    nothing (a number is no word).  A date or time typed alone (6+ digits, or YYYY-MM-DD) is
    looked for between separators in names and folders below the indexed folder."""
    import os
    import shutil

    lib = tmp_path / "lib"
    names = ["site_A_2024-05-12/SMM07345_20240512_043000", "site_A_2024-05-12/SMM07345_20240512_053000",
             "other/20240513_043000", "other/LS100143", "other/take_1043000x"]
    for i, n in enumerate(names):
        (lib / n).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ESC50 / "audio" / esc50_meta()[i]["filename"], lib / f"{n}.flac")
    with Index.create(tmp_path / "idx", audio_expert="logmel", model=None, vector_index="flat") as idx:
        idx.add(lib, progress=False)

        def found(q):
            return sorted(os.path.relpath(h.path, lib)[:-5] for h in idx.search(q, k=10, mode="metadata", group=False))

        assert found("20240512") == names[:2]
        assert found("043000") == sorted([names[0], names[2]])  # not "1043000x": between separators only
        assert found("2024-05-12") == names[:2]  # the folder
        assert found("20240513") == [names[2]]
        assert found("20240514") == []
        hit = idx.search("2024-05-12", k=1, mode="metadata")[0]
        assert "folder" in hit.matched and "name" not in hit.matched
        # (review) a file indexed on its own, under no indexed folder: its name still holds the date
        alone = tmp_path / "AM_20240514_050000.flac"
        shutil.copyfile(ESC50 / "audio" / esc50_meta()[6]["filename"], alone)
        idx.add(alone, progress=False)
        assert [h.path for h in idx.search("20240514", k=5, mode="metadata")] == [str(alone)]
