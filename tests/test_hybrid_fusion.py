"""Issue 18 item 3: hybrid ranking that never hurts — stop words, field weights, calibrated
fusion on one 0–1 scale, matched words."""

from __future__ import annotations

import random
import shutil

import pytest
from conftest import ESC50, esc50_meta, needs_shared

from soundseek.index import fusion
from soundseek.index.fulltext import STOP_WORDS, FullText, fts_query, query_terms
from soundseek.index.catalog import Catalog
from soundseek.index.file_info import FileMetadata


# -- the query's words -------------------------------------------------------------------------
def test_stop_words_and_single_letters_leave_the_query():
    assert query_terms("a gunshot") == ["gunshot"]
    assert query_terms("Footsteps on gravel") == ["footsteps", "gravel"]
    assert query_terms("the sound of a dog barking in the yard, take 2 x") == ["dog", "barking", "yard", "take"]
    assert query_terms("a the of on") == [] and fts_query("a the of on") == ""
    assert {"a", "on", "the", "of", "sound"} <= STOP_WORDS and "dog" not in STOP_WORDS


@pytest.fixture
def store(tmp_path):
    meta = Catalog(tmp_path / "meta.sqlite")
    ft = FullText(meta)
    ids = {}

    def add(path, name="", folder="", embedded=""):
        i, _ = meta.add_item(path, path, 1, 1, 1.0, [(0.0, 1.0)])
        ft.put(i, FileMetadata(name=name, folder=folder, embedded=embedded, machine="", folder_path="/lib",
                               sample_rate=48000, channels=1, format="wav", machine_tags=[]))
        ids[path] = i
        return i

    yield meta, ft, add, ids
    meta.close()


def test_stop_words_match_nothing(store):
    meta, ft, add, ids = store
    sheep = add("/lib/sheep.wav", name="sheep", embedded="A sheep on a farm")
    rain = add("/lib/rain.wav", name="rain on roof")
    gun = add("/lib/gun.wav", name="gunshot pistol")
    meta.commit()
    assert [i for i, _ in ft.search("a gunshot")] == [gun]  # "a" no longer matches the sheep's title
    assert ft.search("footsteps on gravel") == []  # "on" no longer matches "rain on roof"
    assert ft.search("a on the") == []
    found = ft.matches([sheep, rain, gun], "a gunshot on a farm")
    assert found == {gun: {"name": ["gunshot"]}, sheep: {"embedded": ["farm"]}}


def test_field_weights_name_over_folder_over_embedded(store):
    meta, ft, add, ids = store
    # the same word, once, in one field each; every file has the same number of words
    e = add("/lib/e.wav", name="alpha beta", folder="gamma delta", embedded="creak omega")
    f = add("/lib/f.wav", name="alpha beta", folder="creak delta", embedded="gamma omega")
    n = add("/lib/n.wav", name="creak beta", folder="gamma delta", embedded="alpha omega")
    add("/lib/x.wav", name="alpha beta", folder="gamma delta", embedded="kappa omega")
    meta.commit()
    ranked = ft.search("creak")
    assert [i for i, _ in ranked] == [n, f, e]
    assert ranked[0][1] > ranked[1][1] > ranked[2][1] > 0
    norm = ft.search("creak", normalized=True)
    assert [i for i, _ in norm] == [n, f, e] and all(0 < s <= 1 for _, s in norm)
    # half the query's words unknown to every file: the normalized score drops
    half = dict(ft.search("creak zyzzyva", normalized=True))
    assert half[n] < dict(norm)[n]


# -- the fusion --------------------------------------------------------------------------------
def test_fused_scores_are_on_a_0_1_scale_and_metadata_only_adds():
    rng = random.Random(0)
    for _ in range(2000):
        cos, s = rng.uniform(-1, 1), rng.uniform(0, 1)
        c, m = fusion.content_score(cos), fusion.meta_score(s)
        f = fusion.fuse(c, m)
        assert 0 <= c <= 1 and 0 <= m <= 1 and c <= f <= 1
    assert fusion.meta_score(0.0) == 0.0 and fusion.fuse(0.4, 0.0) == 0.4
    xs = [fusion.content_score(x / 10) for x in range(-10, 11)]
    assert xs == sorted(xs) and xs[0] < xs[-1]  # monotone: the content order is kept
    ms = [fusion.meta_score(x / 10) for x in range(1, 11)]
    assert ms == sorted(ms) and ms[0] < ms[-1]
    assert 0 < fusion.PARAMS.weight <= 1 and "val" in fusion.PARAMS.fitted_on


def test_fuse_rankings_keeps_content_without_words_and_floor_for_the_rest():
    content = [(1, 0.9), (2, 0.5), (3, 0.2)]
    assert fusion.fuse_rankings(content, []) == content
    assert fusion.fuse_rankings([], [(7, 0.6)]) == [(7, 0.6)]  # no text–audio model: metadata as is
    weak = fusion.meta_score(0.05)
    fused = fusion.fuse_rankings(content, [(9, weak), (3, weak)])
    assert [d for d, _ in fused][0] == 1  # a weak word match does not beat the strong audio match
    assert dict(fused)[9] == pytest.approx(fusion.fuse(0.2, weak))  # outside the list: its lowest c
    assert dict(fused)[9] <= dict(fused)[3]  # same words, no more sound: not above


# -- end to end on real audio (ESC-50 clips under opaque names, one with a weak title) ------------
@pytest.fixture(scope="module")
def real_index(tmp_path_factory):
    if not (ESC50 / "meta.csv").is_file():
        pytest.skip("real data not found")
    from mutagen.flac import FLAC

    from soundseek import Index

    first = {}
    for r in esc50_meta():
        first.setdefault(r["category"], r["filename"])
    lib = tmp_path_factory.mktemp("fieldrec")
    titles = {"sheep": "A sheep on a hill", "rooster": "backyard farm", "church_bells": ""}
    paths = {}
    for i, cat in enumerate(("dog", "sheep", "rooster", "church_bells", "rain", "clock_tick"), 1):
        p = lib / f"ZOOM{i:04d}.flac"
        shutil.copyfile(ESC50 / "audio" / first[cat], p)
        if titles.get(cat):
            f = FLAC(str(p))
            f["title"] = titles[cat]
            f.save()
        paths[cat] = str(p.resolve())
    idx = Index.create(tmp_path_factory.mktemp("idx") / "index")
    if not idx.has_text_model:
        pytest.skip("no text–audio model is installed")
    assert idx.add(lib, progress=False).added == 6
    yield idx, paths
    idx.close()


@needs_shared("data/esc50-fold1")
def test_a_gunshot_does_not_match_a_title_holding_a(real_index):
    idx, paths = real_index
    for q in ("a gunshot", "footsteps on gravel"):
        assert idx.search(q, k=6, mode="metadata") == []
        assert idx.search(q, k=6) == idx.search(q, k=6, mode="content")  # hybrid is content, untouched


@needs_shared("data/esc50-fold1")
def test_weak_word_match_never_pushes_a_strong_sound_match_down(real_index):
    idx, paths = real_index
    q = "a dog barking in the backyard"
    content = idx.search(q, k=6, mode="content")
    assert content[0].path == paths["dog"]  # the sound itself is the clear best match
    hybrid = idx.search(q, k=6)
    assert hybrid[0].path == paths["dog"] and hybrid[0].score == pytest.approx(content[0].score)
    weak = next(h for h in hybrid if h.path == paths["rooster"])  # its title says "backyard" only
    assert weak.matched == ("embedded",) or set(weak.matched) == {"content", "embedded"}
    assert weak.words == ("backyard",) and "[backyard]" in weak.snippet
    assert all(0 <= h.score <= 1 for mode in ("content", "metadata", "hybrid") for h in idx.search(q, k=6, mode=mode))
    # and the words are what the CLI shows
    from typer.testing import CliRunner

    from soundseek.cli import app

    r = CliRunner().invoke(app, ["search", q, "--index", str(idx.path), "-k", "6"], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    assert "embedded: backyard" in r.output and "embedded: a" not in r.output
