"""The adaptation protocol on a user's own labelled folder (benchmarks/adapt_your_library.py):
how unseen libraries are checked with the same protocol as the corpus packages."""

from __future__ import annotations

import csv
import json
import sys

import pytest

from conftest import REPO, SHARED, needs_shared

sys.path.insert(0, str(REPO / "benchmarks"))

WIDELANDS = SHARED / "data" / "sfx-corpus" / "audio" / "widelands" / "widelands" / "data" / "sound"


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def small_library(tmp_path):
    """Six kinds of widelands sounds, two or three files each, plus one unlabelled file."""
    picks = {"animals/wolf_00.ogg": "wolf howl", "animals/wolf_02.ogg": "wolf howl",
             "animals/frog.ogg": "frog croak", "farm/sheep_00.ogg": "sheep bleat",
             "farm/sheep_01.ogg": "sheep bleat", "animals/crickets1_00.ogg": "crickets",
             "animals/crickets2_00.ogg": "crickets", "animals/bird1_00.ogg": "bird chirp",
             "animals/bird2_00.ogg": "bird chirp", "animals/coyote_00.ogg": "coyote",
             "animals/coyote_01.ogg": "coyote"}
    lib = tmp_path / "mylib"
    for rel in list(picks) + ["animals/boar.ogg"]:
        (lib / rel).parent.mkdir(parents=True, exist_ok=True)
        (lib / rel).write_bytes((WIDELANDS / rel).read_bytes())
    labels = write_csv(tmp_path / "labels.csv", ["file", "label"], sorted(picks.items()))
    queries = write_csv(tmp_path / "queries.csv", ["query", "label"],
                        [("a wolf howling", "wolf howl"), ("a frog croaking", "frog croak"),
                         ("sheep bleating", "sheep bleat"), ("crickets chirping at night", "crickets"),
                         ("a small bird singing", "bird chirp"), ("a coyote yipping", "coyote")])
    return lib, labels, queries


@needs_shared("data/sfx-corpus/audio/widelands")
def test_read_source_checks_what_the_user_gives(tmp_path):
    from adapt_your_library import read_source

    lib, labels, queries = small_library(tmp_path)
    src = read_source(lib, labels, queries)
    assert len(src.labels) == 11 and src.rest == ["animals/boar.ogg"] and len(src.queries) == 6
    bad = write_csv(tmp_path / "bad.csv", ["query", "label"], [("a dog", "dog bark")])
    with pytest.raises(SystemExit, match="dog bark"):
        read_source(lib, labels, bad)
    with pytest.raises(SystemExit, match="file,label"):
        read_source(lib, write_csv(tmp_path / "cols.csv", ["path", "kind"], [("x", "y")]), queries)
    with pytest.raises(SystemExit, match="not a file"):
        read_source(lib, write_csv(tmp_path / "gone.csv", ["file", "label"], [("nope.wav", "y")]), queries)
    with pytest.raises(SystemExit, match="without '..'"):
        read_source(lib, write_csv(tmp_path / "up.csv", ["file", "label"], [("../labels.csv", "y")]), queries)
    with pytest.raises(SystemExit, match="not inside"):
        read_source(lib, write_csv(tmp_path / "out.csv", ["file", "label"], [(str(labels), "y")]), queries)


@pytest.mark.slow
@needs_shared("data/sfx-corpus/audio/widelands")
def test_protocol_runs_end_to_end_on_a_users_folder(tmp_path):
    from adapt_your_library import main

    from soundseek.index.file_info import embedded_text

    lib, labels, queries = small_library(tmp_path)
    out = tmp_path / "result.json"
    assert main(["--library", str(lib), "--labels", str(labels), "--queries", str(queries), "--seeds", "1",
                 "--protocols", "files", "--work", str(tmp_path / "work"), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    row = res["summary"]["files"]
    assert row["queries"] > 0 and all(0.0 <= row[k] <= 1.0 for k in ("before_p1", "after_p1", "after_r10"))
    fold = res["folds"][0]
    assert fold["hybrid"]["installed"] == {"model_kept": False, "memory_kept": False, "name_vectors": False}
    # adapt declined (too few named files): hybrid search is what it was, view by view
    assert fold["hybrid"]["adapted_hybrid"] == fold["hybrid"]["hybrid"]
    # the opaque copies say nothing: recorder names, no embedded text
    opaque = sorted((tmp_path / "work" / "libs" / "mylib-files-fold0" / "recorder").iterdir())
    assert opaque and all(p.name.startswith("ZOOM") and not embedded_text(p) for p in opaque)
    run = res["folds"][0]["runs"][0]  # 5-6 named files: adapt declines and says why
    assert not run["kept"] and "named" in run["reason"]
    truth = json.loads((tmp_path / "work" / "libs" / "mylib-files-fold0.truth.json").read_text())
    assert sum(lab is None for lab in truth.values()) == 1  # boar.ogg: in the library, unlabelled
