"""`soundseek adapt` end to end: the index serves the adapted model (torch-free text queries
included), `info` shows the held-out check, `--revert` restores the base results exactly, and
indexes without the `adapted_model` field keep working."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import SHARED, needs_shared
from soundseek.cli import app
from soundseek.index.catalog import Catalog
from soundseek.index.embedder import Embedder
from soundseek.index.types import ConfigError, IndexConfig

runner = CliRunner()
WIDELANDS = SHARED / "data" / "sfx-corpus" / "audio" / "widelands" / "widelands" / "data" / "sound"
QUERIES = ["a wolf howling", "a hammer on metal", "chopping wood", "a sheep bleating"]


@pytest.mark.parametrize("bad", ["", "/abs/adapted", "../elsewhere", 3])
def test_adapted_model_must_be_a_folder_inside_the_index(bad):
    with pytest.raises(ConfigError, match="adapted_model"):
        IndexConfig(adapted_model=bad).validate()
    IndexConfig(adapted_model="adapted").validate()
    IndexConfig(adapted_model=None).validate()


@pytest.mark.parametrize("report, served", [({"kept": True}, True), ({"kept": False}, False), (None, False)])
def test_only_a_kept_adaptation_is_served(tmp_path, report, served):
    """A discarded or missing adaptation (e.g. a run killed half-way) falls back to the base model."""
    d = tmp_path / "adapted"
    d.mkdir()
    (d / "config.json").write_text("{}")
    if report is not None:
        (d / "adapt_report.json").write_text(json.dumps(report))
    meta = Catalog(tmp_path / "meta.sqlite")
    emb = Embedder(IndexConfig(adapted_model="adapted"), meta, tmp_path)
    assert emb.model_spec == (str(d) if served else "default")
    assert emb.base_model_spec == "default"
    assert Embedder(IndexConfig(), meta, tmp_path).model_spec == "default"  # field unset: base model
    meta.close()


def _cli(*args):
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res


def _search(idx_path: Path, q: str) -> tuple[list[dict], list[str]]:
    """A CLI content search in a fresh process: its hits and the heavy modules it imported."""
    code = (
        "import json, sys\n"
        "sys.argv = ['soundseek', 'search', sys.argv[1], '--index', sys.argv[2], '-k', '10', '--json',"
        " '--mode', 'content']\n"
        "from soundseek.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ['torch', 'sentence_transformers', 'transformers', 'soundseek.adapt']\n"
        "sys.stderr.write('MODULES ' + json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    p = subprocess.run([sys.executable, "-c", code, q, str(idx_path)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["hits"], json.loads(p.stderr.strip().splitlines()[-1][len("MODULES "):])


def _results(idx_path: Path) -> dict:
    out = {}
    for q in QUERIES:
        hits, heavy = _search(idx_path, q)
        assert heavy == [], heavy  # the torch-free text side is fresh
        out[q] = [(h["id"], h["score"]) for h in hits]
    return out


def _same(a: dict, b: dict) -> bool:
    return all([i for i, _ in a[q]] == [i for i, _ in b[q]]
               and np.allclose([s for _, s in a[q]], [s for _, s in b[q]], atol=1e-6) for q in QUERIES)


@pytest.mark.slow
@needs_shared("data/sfx-corpus")
def test_adapt_cli_serves_reports_and_reverts(tmp_path):
    from soundseek import Index
    from soundseek.models.text_side import TextSide

    lib = tmp_path / "lib"
    for folder in ("animals", "farm", "smiths", "woodcutting", "hammering"):
        shutil.copytree(WIDELANDS / folder, lib / folder)
    (lib / "recorder").mkdir()  # new recordings without names
    for i, src in enumerate(["animals/wolf_00.ogg", "smiths/" + sorted(p.name for p in (WIDELANDS / "smiths").iterdir())[0],
                             "woodcutting/" + sorted(p.name for p in (WIDELANDS / "woodcutting").iterdir())[0]], 1):
        shutil.copy(WIDELANDS / src, lib / "recorder" / f"ZOOM{i:04d}.OGG")
    ip = tmp_path / "idx"
    idx = Index.create(ip)
    assert not idx.add(lib, progress=False).failed
    n = len(idx)
    idx.close()
    assert "adaptation" not in _cli("info", "--index", str(ip)).stdout
    assert json.loads(_cli("info", "--index", str(ip), "--json").stdout)["adaptation"] is None
    base = _results(ip)
    base_fp = TextSide.read_header(ip)["model_fingerprint"]

    res = _cli("adapt", "--index", str(ip), "--seed", "0")
    assert "held-out check" in res.output and "names read as" in res.output
    report = json.loads((ip / "adapted" / "adapt_report.json").read_text())
    assert report["files"] == n and report["named_files"] < n  # ZOOM0001-3 have no caption
    assert report["base_model"] == "default"
    assert report["kept"], report["reason"]  # this library and seed: the check keeps it
    from soundseek.adapt.trainer import WEAK_CHECK_GROUPS  # a check on a handful of names says so (bio probe)

    weak = report["check"]["held_out_groups"] < WEAK_CHECK_GROUPS
    assert ("few: a weak check" in report["reason"]) == weak, (report["check"]["held_out_groups"], report["reason"])
    assert (ip / "adapted" / "config.json").is_file()

    os.utime(ip / "adapted" / "adapt_report.json", (1e9, 1e9))  # a copy (cp -r) gives the file a new date
    info = json.loads(_cli("info", "--index", str(ip), "--json").stdout)
    assert info["adapted_model"] == "adapted" and info["adaptation"]["in_use"]
    assert info["adaptation"]["date"] == report["date"] and not report["date"].startswith("2001")  # the run's own
    assert info["adaptation"]["check"]["base"]["map"] == report["check"]["base"]["map"]
    text = _cli("info", "--index", str(ip)).stdout
    assert "in use: held-out mAP" in text and "held-out check" in text and " -> " in text

    idx = Index.open(ip)  # the index serves the adapted model
    assert idx.model_spec == str(ip / "adapted") and idx.embedder.base_model_spec == "default"
    header = TextSide.read_header(ip)
    assert header["model_spec"] == "index:adapted"  # by its place in the index: any path to it finds it
    assert header["model_fingerprint"] == idx.meta.get_meta("model_fingerprint") != base_fp
    idx.close()
    adapted = _results(ip)  # torch-free, and the window vectors changed with the model
    assert not _same(adapted, base)

    res = _cli("adapt", "--index", str(ip), "--revert")
    assert "base model" in res.output
    assert json.loads((ip / "index.json").read_text())["adapted_model"] is None
    assert _same(_results(ip), base)  # exactly the base results again
    assert TextSide.read_header(ip)["model_fingerprint"] == base_fp
    assert "reverted to the base model" in _cli("info", "--index", str(ip)).stdout

    # an index written before adaptation existed: no field at all, opens and searches unchanged
    cfg = json.loads((ip / "index.json").read_text())
    del cfg["adapted_model"]
    (ip / "index.json").write_text(json.dumps(cfg, indent=2) + "\n")
    before = (ip / "index.json").read_bytes()
    idx = Index.open(ip)
    assert idx.config.adapted_model is None and idx.model_spec == "default"
    idx.close()
    assert _same(_results(ip), base)
    assert (ip / "index.json").read_bytes() == before  # readers never rewrite it


@needs_shared("data/sfx-corpus")
def test_index_adapt_on_a_small_library_keeps_the_base_model(tmp_path):
    """`index --adapt` runs adaptation after indexing; too few named files: reported, not kept."""
    lib = tmp_path / "lib"
    shutil.copytree(WIDELANDS / "smiths", lib / "smiths")
    ip = tmp_path / "idx"
    res = _cli("index", str(lib), "--index", str(ip), "--adapt", "-q")
    assert "adaptation not kept: too few named files" in res.output and "base model" in res.output
    report = json.loads((ip / "adapted" / "adapt_report.json").read_text())
    assert not report["kept"] and report["model_dir"] is None
    assert not (ip / "adapted" / "config.json").exists()
    assert json.loads((ip / "index.json").read_text())["adapted_model"] is None
    info = json.loads(_cli("info", "--index", str(ip), "--json").stdout)
    assert info["adaptation"]["in_use"] is False and info["adapted_model"] is None
    assert "not in use: too few named files" in _cli("info", "--index", str(ip)).stdout
    hits, heavy = _search(ip, "a hammer on metal")
    assert hits and heavy == []  # the base model's torch-free text side is still fresh


def test_info_after_reverting_a_memory_only_adaptation_says_reverted():
    """A run that kept only the name memory, then reverted: `info` began with the run's reason,
    "... name memory kept", as if it were still in use."""
    from soundseek.adapt.apply import describe

    state = {"in_use": False, "kept": False, "memory_in_use": False, "name_vectors_in_use": 0, "date": "d",
             "reason": "adaptation not kept: gain below 0.01; name memory kept (seen kinds mAP 0.5 -> 0.7)",
             "check": {"memory": {"kept": True, "reason": "seen kinds mAP 0.5 -> 0.7", "spaces": ["sfx"]}}}
    lines = describe(state)
    assert lines[0].startswith("reverted to the base model, no name memory, no names' meaning; last run:"), lines
    assert any(line.startswith("name memory not in use") for line in lines)
    state["memory_in_use"] = True  # still installed: the run's own line
    assert describe(state)[0].startswith("adapted model not in use: adaptation not kept")


def test_info_after_reverting_a_names_only_adaptation_says_reverted_and_counts_new_files():
    """Sound-designer probe (2026-12-08): a run whose model and memory were not kept still
    installs what the names mean; after `--revert` its first line read as before, with nothing
    to say hybrid search had changed back.  And `info` gave no sign that files came since."""
    from soundseek.adapt.apply import describe

    state = {"in_use": False, "kept": False, "memory_in_use": False, "name_vectors_in_use": 0, "date": "d",
             "files": 369, "files_now": 371, "named_files": 259,
             "reason": "adaptation not kept: held-out mAP 0.625 -> 0.625: gain +0.0000, below 0.01",
             "check": {"memory": {"kept": False, "reason": "no gain"}, "names": {"files": 259, "unreadable": 0}}}
    lines = describe(state)
    assert lines[0].startswith("reverted to the base model"), lines
    assert "the index holds 371 files now, 369 when this ran" in "\n".join(lines)
    state["name_vectors_in_use"] = 259  # still installed: the run's own line, and what the names mean
    lines = describe(state)
    assert lines[0].startswith("adapted model not in use") and "what the names mean: 259 named files" in "\n".join(lines)
    state["files_now"] = 369
    assert not any("files now" in line for line in describe(state))
