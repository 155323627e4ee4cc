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
    assert run["declined"] and row["kept"] == [False, False] and run["reason"] in row["declined"]
    assert res["folds"][0]["not_indexed"] == [] and out.exists()
    import soundseek  # which model's numbers these are, beyond "default"

    with soundseek.Index.open(tmp_path / "work" / "index" / "mylib-files-fold0") as idx:
        assert res["model_fingerprint"] and res["model_fingerprint"] == idx.model_fingerprint()
    truth = json.loads((tmp_path / "work" / "libs" / "mylib-files-fold0.truth.json").read_text())
    assert sum(lab is None for lab in truth.values()) == 1  # boar.ogg: in the library, unlabelled


def fake_library(tmp_path, names):
    """Files with audio names (read_source looks at names only: no decoding here)."""
    lib = tmp_path / "lib"
    for n in names:
        (lib / n).parent.mkdir(parents=True, exist_ok=True)
        (lib / n).write_bytes(b"RIFF")
    return lib


def test_labels_written_by_spreadsheets_are_read(tmp_path):
    """A byte-order mark, CRLF, a capitalised header with spaces, ';' separators, quoted commas and
    quotes in names, a Windows path, spaces a spreadsheet left around a name or a label."""
    from adapt_your_library import read_source

    names = ["Steps/dirt 1.wav", "Steps/dirt, take 2.flac", 'Doors/door "big".ogg', "Doors/porte été.WAV",
             "glass.ogg", "fire 1.ogg", "fire 2.ogg", "other/unlabelled.mp3", "notes.txt"]
    lib = fake_library(tmp_path, names)
    labels = tmp_path / "labels.csv"
    labels.write_bytes(("\ufeffFile , LABEL\r\n"
                        "Steps/dirt 1.wav,footsteps  \r\n"
                        '"Steps/dirt, take 2.flac",footsteps\r\n'
                        '"Doors/door ""big"".ogg",door\r\n'
                        "Doors\\porte été.WAV,door\r\n"
                        "\r\n"
                        " glass.ogg ,glass   breaking\r\n"
                        f"{lib / 'fire 1.ogg'},fire\r\n"
                        "fire 2.ogg,fire\r\n").encode("utf-8"))
    queries = tmp_path / "queries.csv"
    queries.write_text("Query;Label\nwalking on dirt;footsteps\na door;door\nglass shattering;glass breaking\n"
                       "fire;fire\n", encoding="utf-8-sig")
    src = read_source(lib, labels, queries)
    assert src.labels == {"Steps/dirt 1.wav": "footsteps", "Steps/dirt, take 2.flac": "footsteps",
                          'Doors/door "big".ogg': "door", "Doors/porte été.WAV": "door",
                          "glass.ogg": "glass breaking", "fire 1.ogg": "fire", "fire 2.ogg": "fire"}
    assert src.rest == ["other/unlabelled.mp3"] and ("glass shattering", "glass breaking") in src.queries


def test_labels_that_cannot_be_meant_are_refused_with_their_line(tmp_path):
    from adapt_your_library import read_source

    lib = fake_library(tmp_path, ["a, b.wav", "c.wav", "d.wav", "e.wav", "f.wav", "notes.txt",
                                  "recorder/ZOOM0001.WAV"])
    queries = write_csv(tmp_path / "q.csv", ["query", "label"], [("x", "c")])

    def labels(text):
        (tmp_path / "l.csv").write_text("file,label\n" + text)
        return tmp_path / "l.csv"

    ok = "c.wav,c\nd.wav,d\ne.wav,e\nf.wav,f\n"
    with pytest.raises(SystemExit, match=r"line 2: 3 fields .*quote"):  # an unquoted comma in a name
        read_source(lib, labels("a, b.wav,a\n" + ok), queries)
    with pytest.raises(SystemExit, match="line 3: 1 fields"):
        read_source(lib, labels("c.wav,c\nd.wav\n"), queries)
    with pytest.raises(SystemExit, match="labelled both 'c' and 'd'"):
        read_source(lib, labels(ok + "c.wav,d\n"), queries)
    with pytest.raises(SystemExit, match="not an audio file"):
        read_source(lib, labels(ok + "notes.txt,n\n"), queries)
    # the protocol's own hidden names: a user's recorder folder would be read as hidden files
    with pytest.raises(SystemExit, match="recorder/ZOOM0001.WAV"):
        read_source(lib, labels(ok), queries)
    (lib / "recorder" / "ZOOM0001.WAV").rename(lib / "recorder" / "take 1.WAV")
    assert read_source(lib, labels(ok), queries).rest == ["a, b.wav", "recorder/take 1.WAV"]
    with pytest.raises(SystemExit, match="line 2: label 'c' has no query text"):  # was skipped without a word
        read_source(lib, labels(ok), write_csv(tmp_path / "q0.csv", ["query", "label"], [("", "c")]))
    with pytest.raises(SystemExit, match="line 2: the query 'a lonely query' has no label"):  # was "labels ... : "
        read_source(lib, labels(ok), write_csv(tmp_path / "q2.csv", ["query", "label"], [("a lonely query", "")]))
    with pytest.raises(SystemExit, match="no queries"):
        read_source(lib, labels(ok), write_csv(tmp_path / "q3.csv", ["query", "label"], []))
    with pytest.raises(SystemExit, match="'C': did you mean 'c'.*case included"):
        read_source(lib, labels(ok), write_csv(tmp_path / "q1.csv", ["query", "label"], [("x", "C")]))
    (lib / "._c.wav").write_bytes(b"\x00\x05\x16\x07")
    with pytest.raises(SystemExit, match="macOS resource file"):  # was "not an audio file ... (by its extension)"
        read_source(lib, labels(ok + "._c.wav,c\n"), queries)
    with pytest.raises(SystemExit, match="inside the library"):  # its copies would join the library
        read_source(lib, labels(ok), queries, work=lib / "runs")
    with pytest.raises(SystemExit, match="no such file"):
        read_source(lib, tmp_path / "missing.csv", queries)


def test_hidden_files_are_known_by_their_own_name_not_a_folder_above():
    from adapt_library import is_opaque

    assert is_opaque("/w/libs/lib-files-fold0/recorder/ZOOM0007.FLAC")
    assert not is_opaque("/home/me/recorder/work/libs/lib-files-fold0/steps/dirt.wav")
    assert not is_opaque("/w/libs/lib/recorder/take 1.wav")


def test_the_run_says_what_it_cannot_measure(tmp_path, capsys):
    from adapt_your_library import describe, main, read_source

    lib = fake_library(tmp_path, [f"{k}{i}.wav" for k in "abcde" for i in range(2)])
    labels = write_csv(tmp_path / "l.csv", ["file", "label"], [(f"{k}{i}.wav", k) for k in "abcde" for i in range(2)])
    queries = write_csv(tmp_path / "q.csv", ["query", "label"], [("x", "a"), ("y", "b")])
    lines = describe(read_source(lib, labels, queries))
    assert "10 labelled files, 5 labels" in lines[0] and "2 queries for 2 labels" in lines[0]
    assert "3 labels have no query" in lines[1] and "c, d, e" in lines[1]
    # one-letter names give adapt nothing to read, in every fold of both protocols
    assert [line.split(":")[0].strip() for line in lines[2:6]] == ["labels fold 0", "labels fold 1", "files fold 0",
                                                                   "files fold 1"]
    assert "0 files with names adapt can read" in lines[2] and "adapt needs 20 named files and 8 distinct" in lines[2]
    assert "9 files are byte-identical copies" in lines[6]  # fake_library writes the same bytes
    (lib / "a1.wav").write_bytes(b"RIFF other")
    assert "8 files are byte-identical" in describe(read_source(lib, labels, queries))[6]
    with pytest.raises(SystemExit):
        main(["--library", str(lib), "--labels", str(labels), "--queries", str(queries), "--seeds", "0"])
    assert "--seeds must be at least 1" in capsys.readouterr().err


def test_files_the_index_cannot_read_are_named_as_the_user_knows_them(tmp_path):
    """A labelled file that fails (too short) hides behind ZOOMnnnn in the copy: the report gives
    its own name and says it stays in the counts; an unreadable unlabelled file is only listed."""
    from adapt_library import Source, build_library
    from adapt_your_library import not_indexed

    lib = fake_library(tmp_path, ["doors/click.wav", "._junk.ogg"])
    src = Source("lib", lib, {"doors/click.wav": "door"}, ["._junk.ogg"], [])
    truth = build_library(tmp_path / "work" / "libs" / "lib-files-fold0", src, set())
    failed = [[p, "too short"] for p in sorted(truth)]
    lines = not_indexed(tmp_path / "work", src, "files", 0, failed)
    assert lines == ["not indexed: ._junk.ogg: too short (unlabelled)",
                     "not indexed: doors/click.wav: too short (labelled 'door': counts as never found)"]


def test_adapt_declining_is_foreseen_by_names_and_distinct_names_not_file_counts(tmp_path):
    """Before: only the number of labelled files was looked at, so a small labelled set with many
    well-named unlabelled files was wrongly announced as declining, and a library of numbered
    files (names adapt cannot read) or of too few distinct names was not announced at all."""
    from adapt_your_library import adapt_will_decline, read_source

    kinds = ["dog bark", "cat meow", "door creak", "glass break", "rain heavy", "wind gust", "fire crackle",
             "car horn", "bell ring", "water drip"]
    labelled = [f"{k.replace(' ', '_')}_{i:02d}.wav" for k in kinds[:4] for i in range(2)]
    unlabelled = [f"more/{k.replace(' ', '_')}_{i:02d}.wav" for k in kinds for i in range(3)]
    lib = fake_library(tmp_path, labelled + unlabelled)
    labels = write_csv(tmp_path / "l.csv", ["file", "label"], [(f, f.rsplit("_", 1)[0]) for f in labelled])
    queries = write_csv(tmp_path / "q.csv", ["query", "label"], [("a dog barking", "dog_bark")])
    assert adapt_will_decline(read_source(lib, labels, queries), ["labels", "files"]) == []
    # numbered files in labelled folders: a folder alone never names a file
    numbered = [f"{k.replace(' ', '_')}/{i:03d}.wav" for k in kinds for i in range(4)]
    lib2 = fake_library(tmp_path / "two", numbered)
    labels2 = write_csv(tmp_path / "l2.csv", ["file", "label"], [(f, f.split("/")[0]) for f in numbered])
    lines = adapt_will_decline(read_source(lib2, labels2, queries), ["files"])
    assert len(lines) == 2 and all("0 files with names adapt can read" in line for line in lines)
    # 30 well-named files but only 3 distinct names
    few = [f"{k.replace(' ', '_')}_{i:02d}.wav" for k in kinds[:4] for i in range(10)]
    lib3 = fake_library(tmp_path / "three", few)
    labels3 = write_csv(tmp_path / "l3.csv", ["file", "label"], [(f, f.rsplit("_", 1)[0]) for f in few])
    lines = adapt_will_decline(read_source(lib3, labels3, queries), ["labels"])
    assert len(lines) == 2 and all("adapt needs 8 distinct names" in line for line in lines), lines


def test_byte_identical_copies_are_left_out_keeping_a_labelled_one(tmp_path):
    from adapt_your_library import read_source, without_copies

    lib = tmp_path / "lib"
    lib.mkdir()
    for name, data in [("a.wav", b"A"), ("copy of a.wav", b"A"), ("b.wav", b"B"), ("c.wav", b"C"), ("d.wav", b"D"),
                       ("z/a again.wav", b"A")]:
        (lib / name).parent.mkdir(exist_ok=True)
        (lib / name).write_bytes(data)
    labels = write_csv(tmp_path / "l.csv", ["file", "label"],
                       [("copy of a.wav", "a"), ("b.wav", "b"), ("c.wav", "c"), ("d.wav", "d")])
    queries = write_csv(tmp_path / "q.csv", ["query", "label"], [("x", "a")])
    src = without_copies(read_source(lib, labels, queries))
    assert src.labels == {"copy of a.wav": "a", "b.wav": "b", "c.wav": "c", "d.wav": "d"} and src.rest == []
    # one recording, two labels: the user says which
    two = write_csv(tmp_path / "l2.csv", ["file", "label"],
                    [("copy of a.wav", "a"), ("a.wav", "b"), ("b.wav", "b"), ("c.wav", "c"), ("d.wav", "d")])
    with pytest.raises(SystemExit, match="same recording .* two labels, 'a' and 'b'"):
        without_copies(read_source(lib, two, queries))


def test_the_forecast_is_of_the_library_the_run_lays_out(tmp_path):
    """Copies left out before the forecast: a backup folder of identical files made 'adapt will
    train' out of a library where it declines in every fold."""
    from adapt_your_library import describe, duplicate_files, read_source, without_copies

    kinds = ["dog bark", "cat meow", "door creak", "glass break", "rain heavy", "wind gust", "fire crackle",
             "car horn", "bell ring"]
    lib = tmp_path / "lib"
    names = [f"{k.replace(' ', '_')}_{i:02d}.wav" for k in kinds for i in range(2)]
    for n in names:
        for folder in (lib, lib / "backup"):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / n).write_bytes(b"RIFF" + n.encode())
    labels = write_csv(tmp_path / "l.csv", ["file", "label"], [(n, n.rsplit("_", 1)[0]) for n in names])
    queries = write_csv(tmp_path / "q.csv", ["query", "label"], [("a dog barking", "dog_bark")])
    full = read_source(lib, labels, queries)
    copies = duplicate_files(full)
    lines = describe(without_copies(full, copies), ["labels", "files"], copies)
    assert sum("likely decline" in line for line in lines) == 4, lines
    assert any("18 files are byte-identical copies" in line for line in lines)


def test_names_as_other_systems_write_them(tmp_path):
    """Excel's 'sep=;' first line, a name in the other Unicode form (macOS keeps 'é' decomposed), an
    absolute path through a link inside the library, a letter-case slip (with a hint), an empty label."""
    import os
    import unicodedata

    from adapt_your_library import read_source

    lib = fake_library(tmp_path, [unicodedata.normalize("NFD", "café crème.wav"), "b.wav", "c.wav", "Doors/Creak.wav"])
    (lib / "links").mkdir()
    os.symlink(lib / "b.wav", lib / "links" / "b link.wav")
    queries = write_csv(tmp_path / "q.csv", ["query", "label"], [("x", "cafe")])
    labels = tmp_path / "l.csv"
    labels.write_text("sep=;\nfile;label\n" + unicodedata.normalize("NFC", "café crème.wav") + ";cafe\n"
                      f"{lib / 'links' / 'b link.wav'};b\nc.wav;c\nDoors/Creak.wav;door\n", encoding="utf-8")
    src = read_source(lib, labels, queries)
    assert src.labels == {unicodedata.normalize("NFD", "café crème.wav"): "cafe", "links/b link.wav": "b",
                          "c.wav": "c", "Doors/Creak.wav": "door"}
    labels.write_text("file,label\ndoors/creak.wav,door\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"line 2: doors/creak.wav is not a file .*did you mean Doors/Creak.wav"):
        read_source(lib, labels, queries)
    labels.write_text("sep=;\nfile;label\nc.wav;c\nb.wav; \n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"line 4: b.wav has no label"):
        read_source(lib, labels, queries)


def test_hidden_copies_of_damaged_mp3s_are_quiet(tmp_path, capfd):
    """A damaged MP3 in a user's labels: copied as it is, and libmpg123's "Note: Illegal
    Audio-MPEG-Header" lines stay off the terminal (the index reports the file itself)."""
    from adapt_library import strip_tags
    from test_audio_bad_files import _corrupt_mp3s

    for name, path in _corrupt_mp3s(tmp_path).items():
        strip_tags(path, tmp_path / f"copy-{name}")
        assert (tmp_path / f"copy-{name}").exists()
    assert capfd.readouterr().err == ""


def test_hidden_copies_of_odd_files(tmp_path):
    """A tagged RIFF file named .wave loses its tags too (it was copied with them, and the run
    stopped); a file no decoder reads is copied as it is, for the index to list as not indexed."""
    import numpy as np
    import soundfile as sf
    from adapt_library import strip_tags

    from soundseek.index.file_info import embedded_text

    src = tmp_path / "cow 4b.wave"
    with sf.SoundFile(str(src), "w", 16000, 1, format="WAV", subtype="PCM_16") as f:
        f.title, f.comment = "cow moo title", "a cow moos"
        f.write(np.zeros(1600, dtype=np.int16))
    assert embedded_text(src)
    strip_tags(src, tmp_path / "ZOOM0001.WAVE")
    assert not embedded_text(tmp_path / "ZOOM0001.WAVE")
    assert np.array_equal(sf.read(str(tmp_path / "ZOOM0001.WAVE"), dtype="int16")[0], np.zeros(1600, np.int16))
    import struct

    def chunk(cid, data):
        return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")

    body = (b"WAVE" + chunk(b"fmt ", struct.pack("<HHIIHH", 0x1234, 1, 16000, 32000, 2, 16))  # a codec no one reads
            + chunk(b"LIST", b"INFO" + chunk(b"INAM", b"dog barking\0")) + chunk(b"data", b"\x01\x02" * 800))
    unknown_codec = b"RIFF" + struct.pack("<I", len(body)) + body
    for name, data in [("broken.wav", b"RIFF" + bytes(100)), ("broken.flac", b"fLaC" + bytes(50)),
                       ("broken.mp3", bytes(64)), ("tagged but undecodable.wav", unknown_codec)]:
        (tmp_path / name).write_bytes(data)
        strip_tags(tmp_path / name, tmp_path / f"copy-{name}")
        assert (tmp_path / f"copy-{name}").read_bytes() == data


def test_files_never_ranked_count_as_never_found():
    """A labelled hidden file the index could not read is relevant and never found: it lowers R@10
    and mAP and keeps its query in the counts (before, the headline numbers left it out)."""
    import numpy as np

    from soundseek.adapt.scoring import rank_metrics

    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.1]])
    rel = np.array([[True, False, False], [False, False, False]])
    plain = rank_metrics(scores, rel)
    assert (plain.p1, plain.r10, plain.map, plain.n_queries) == (1.0, 1.0, 1.0, 1)
    lost = rank_metrics(scores, rel, np.array([1, 1]))
    assert lost.n_queries == 2 and lost.p1 == 0.5 and lost.r10 == 0.25 and lost.map == 0.25
    assert rank_metrics(scores[:, :0], rel[:, :0], np.array([1, 0])).n_queries == 1
    # P@5 is of 5, also where fewer than 5 files are ranked (it was P@3 here: 1/3)
    assert rank_metrics(scores, rel).p5 == 0.2


def test_labels_that_differ_only_in_case_are_named_at_the_start(tmp_path):
    from adapt_your_library import describe, read_source

    lib = tmp_path / "lib"
    lib.mkdir()
    for i, lab in enumerate(["wolf", "Wolf", "door", "glass", "rain"]):
        (lib / f"f{i}.wav").write_bytes(b"RIFF" + bytes([i]))
    labels = write_csv(tmp_path / "l.csv", ["file", "label"],
                       [(f"f{i}.wav", lab) for i, lab in enumerate(["wolf", "Wolf", "door", "glass", "rain"])])
    queries = write_csv(tmp_path / "q.csv", ["query", "label"], [("a wolf", "wolf")])
    lines = describe(read_source(lib, labels, queries), ["files"])
    assert any("differ only in letter case" in line and "'Wolf' / 'wolf'" in line for line in lines), lines


def test_a_file_a_mode_does_not_return_is_not_found():
    """Files metadata search did not return all had the score -1e9 and were ranked by path among
    themselves, so the protocol's random ZOOM numbering gave hidden files a 'metadata' P@1."""
    from types import SimpleNamespace

    from adapt_hybrid import ranked_metrics

    paths = ["/w/libs/x/recorder/ZOOM0001.WAV", "/w/libs/x/recorder/ZOOM0002.WAV", "/w/libs/x/dog_bark.wav"]
    truth = {paths[0]: "dog", paths[1]: "cat", paths[2]: "dog"}

    class Idx:
        def items(self):
            return [SimpleNamespace(path=p) for p in paths]

        def search(self, q, k, mode, group):  # metadata: only the named file's words match
            return [SimpleNamespace(path=paths[2])] if mode == "metadata" else [SimpleNamespace(path=p) for p in paths]

    out = ranked_metrics(Idx(), [("a dog", "dog")], truth, "metadata")
    assert out["opaque"]["p1"] == 0.0 and out["opaque"]["r10"] == 0.0 and out["opaque"]["n_queries"] == 1
    assert out["named"]["p1"] == 1.0
    assert ranked_metrics(Idx(), [("a dog", "dog")], truth, "content")["opaque"]["p1"] == 1.0


@pytest.mark.slow
@needs_shared("data/sfx-corpus/audio/widelands")
def test_ctrl_c_ends_with_a_line_not_a_traceback(tmp_path):
    """Ctrl-C during the run (torch's threads are up) says what was written and exits 130."""
    import os
    import signal
    import subprocess

    lib, labels, queries = small_library(tmp_path)
    proc = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "adapt_your_library.py"), "--library", str(lib),
                             "--labels", str(labels), "--queries", str(queries), "--seeds", "1", "--protocols", "files",
                             "--work", str(tmp_path / "work")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    for line in proc.stdout:  # the run has begun: copying and indexing the first fold
        if "fold 0: copying" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err, err[-2000:]
