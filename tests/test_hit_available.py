"""``Hit.available``: the Python API says whether a hit's file is still on disk, as the CLI's
"(file missing)" mark and the HTTP API's ``available`` do (one stat on access, never stored)."""

from __future__ import annotations

import json
from dataclasses import fields

from soundseek.export import format_hits
from soundseek.index.types import Hit


def test_available_follows_the_file_on_each_access(tmp_path):
    f = tmp_path / "thud.wav"
    f.write_bytes(b"RIFF")
    hit = Hit(id=1, path=str(f), score=0.5, duration=1.0)
    assert hit.available is True
    f.unlink()
    assert hit.available is False  # computed on access: the same object sees the deletion
    assert "available" not in {fl.name for fl in fields(Hit)}  # not stored, not compared
    assert hit == Hit(id=1, path=str(f), score=0.5, duration=1.0)


def test_to_dict_and_json_export_carry_available(tmp_path):
    kept, gone = tmp_path / "kept.wav", tmp_path / "gone.wav"
    kept.write_bytes(b"RIFF")
    hits = [Hit(1, str(kept), 0.9, 1.0), Hit(2, str(gone), 0.8, 1.0, copies=((3, str(kept)),))]
    assert [h.to_dict()["available"] for h in hits] == [True, False]
    d = hits[1].to_dict()  # the documented keys are all still there
    assert {"id", "path", "score", "duration", "start", "end", "tags", "matched", "snippet", "words",
            "copies"} <= set(d)
    assert [h["available"] for h in json.loads(format_hits(hits, "json", "thud"))["hits"]] == [True, False]
    assert format_hits(hits, "csv").splitlines()[0] == "rank,id,path,score,duration,start,end,matched,tags,moments"
