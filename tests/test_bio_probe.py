"""What a bioacoustics probe found (2026-12-07), beside test_index_moves.py (a moved archive) and
test_adapt.py (a recorder app's default name): a bat detector's 192-kHz recording was indexed
without a word, though the model hears nothing above 8 kHz in it."""

from __future__ import annotations

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

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
    import json

    report = json.loads(res.stdout)
    assert [(p.rsplit("/", 1)[-1], hz) for p, hz in report["high_rate"]] == [("bat_pass_01.wav", 192000)]
    res = CliRunner().invoke(app, ["index", str(lib), "--index", str(tmp_path / "idx2"), "--expert", "logmel",
                                   "--model", "none", "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "1 file was recorded at 192 kHz (bat_pass_01.wav): the model listens at 16 kHz, so sounds above 8 kHz" \
        in text and "ultrasound, bat calls" in text
    assert "dawn_48k" not in text
