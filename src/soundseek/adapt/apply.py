"""Adaptation as the product serves it: run it on an index and install the kept model, go back
to the base model, and read what the last run decided (``soundseek adapt`` / ``info``).

Only public seams of the index are used (``Index.writing``, ``Index.set_adapted_model``,
``Index.embedder.base_model_spec``): the index (layer 4) knows nothing of adaptation beyond
``IndexConfig.adapted_model``, a model folder it serves while its report says kept.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .trainer import REPORT_FILE, AdaptConfig, AdaptReport, adapt_index


def adapt_and_install(index, config: AdaptConfig | None = None, progress: bool = True) -> AdaptReport:
    """Adapt ``index``'s model to its library (always from the configured base model, never
    from an adapted one) and serve the result: the adapted model when the held-out check kept
    it, else the base model (a discarded run replaces an earlier kept one).  The window vectors
    are then recomputed from the cached features and the torch-free text side re-exported, so
    text search stays as fast as before.  Holds the writer lock throughout."""
    cfg = config or AdaptConfig()
    if Path(cfg.out_dir).is_absolute():
        raise ValueError(f"out_dir must be a folder inside the index, not {cfg.out_dir!r}")
    with index.writing():
        report = adapt_index(index, cfg, progress, base_model=index.embedder.base_model_spec)
        t0 = time.perf_counter()
        if progress:
            print("recomputing the search vectors with the " + ("adapted" if report.kept else "base") + " model",
                  file=sys.stderr, flush=True)
        index.set_adapted_model(cfg.out_dir if report.kept else None)
        install_memory(index, Path(index.path) / cfg.out_dir)
    report.seconds = round(report.seconds + time.perf_counter() - t0, 1)
    return report


def install_memory(index, folder: Path) -> bool:
    """Use the name memory that adaptation saved in ``folder`` (when its check kept one) and the
    name vectors (hybrid search) for the model the index serves now; otherwise remove the
    index's.  True when a memory is in use."""
    from ..index.name_match import NAMES_FILE, NameVectors
    from ..index.name_memory import ANCHORS_FILE, MEMORY_FILE, MemoryAnchors, NameMemory

    fingerprint = index.model_fingerprint() or ""
    # everything is read first: a damaged file raises before the index changes
    names = NameVectors.load(folder / NAMES_FILE) if (folder / NAMES_FILE).is_file() else None
    mem = NameMemory.load(folder / MEMORY_FILE) if (folder / MEMORY_FILE).is_file() else None
    anchors = MemoryAnchors.load(folder / ANCHORS_FILE) if mem is not None and (folder / ANCHORS_FILE).is_file() \
        else None
    for saved in (names, mem):
        if saved is not None:
            saved.fingerprint = fingerprint
    index.set_name_vectors(names)
    index.set_name_memory(mem, anchors)
    return mem is not None


def revert(index) -> bool:
    """Serve the base model again, without the name memory (the adapted model, the memory and
    the report stay in the adaptation's folder: ``info`` still shows them).  True when the
    search vectors were recomputed."""
    index.set_name_memory(None)
    index.set_name_vectors(None)
    return index.set_adapted_model(None)


def memory_gap(index) -> int:
    """How many of the index's files the name memory in use does not cover (indexed after the
    last ``adapt`` when it wrote no anchors: no neighbours until the next one); 0 without a memory."""
    import numpy as np

    mem = index.name_memory.current()
    if mem is None:
        return 0
    ids = np.array([item.id for item in index.items()], dtype=np.int64)
    return int((~np.isin(ids, mem.item_ids)).sum())


def adaptation_state(index) -> dict | None:
    """The last run's report (``adapt_report.json`` as a dict) with ``in_use`` (its model serves
    searches now) and ``date`` (ISO, UTC, of the report), or None when the index was never adapted."""
    folder = index.config.adapted_model or AdaptConfig().out_dir
    path = Path(index.path) / folder / REPORT_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict):
        return None
    state["in_use"] = index.embedder.adapted_dir() is not None
    state["memory_in_use"] = index.name_memory.current() is not None
    names = index.name_vectors.current()
    state["name_vectors_in_use"] = 0 if names is None else len(names.item_ids)
    state["files_since_adapt"] = memory_gap(index)
    state["files_now"] = len(index)
    if not isinstance(state.get("date"), str):  # a report written before it held its date: the file's
        state["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(path.stat().st_mtime))
    return state


def describe(state: dict) -> list[str]:
    """``adaptation_state`` as readable lines (``soundseek info`` / ``adapt``)."""
    chk = state.get("check") or {}
    lines = [f"adapted model {'in use' if state['in_use'] else 'not in use'}: {state.get('reason', '')} ({state.get('date', '')})"]
    # what the run installed: a kept model or memory, and (with no check) what the names mean
    installed = (state.get("kept") or bool((chk.get("memory") or {}).get("kept"))
                 or bool((chk.get("names") or {}).get("files")))
    if installed and not (state["in_use"] or state.get("memory_in_use") or state.get("name_vectors_in_use")):
        lines[0] = (f"reverted to the base model, no name memory, no names' meaning; last run: "
                    f"{state.get('reason', '')} ({state.get('date', '')})")
    lines.append(f"{state.get('named_files', 0)} of {state.get('files', 0)} files named, "
                 f"{state.get('caption_groups', 0)} distinct names")
    if "base" in chk and "adapted" in chk:
        b, a = chk["base"], chk["adapted"]
        lines.append(f"held-out check ({chk.get('held_out_files', 0)} files, {chk.get('held_out_groups', 0)} names): "
                     + ", ".join(f"{k} {b[m]:.3f} -> {a[m]:.3f}" for k, m in
                                 (("P@1", "p1"), ("P@5", "p5"), ("R@10", "r10"), ("mAP", "map")) if m in b and m in a))
    mem = chk.get("memory")
    if mem:
        by = {"sfx": "aisfx", "model": "the model", "features": "the expert's frames"}
        spaces = " and ".join(by.get(s, s) for s in mem.get("spaces", []))
        lines.append(f"name memory {'in use' if state.get('memory_in_use') else 'not in use'}"
                     f"{f' (sounds alike by {spaces})' if spaces else ''}: {mem.get('reason', '')}")
        lines.append("  (its check, with the library's own names as queries: 'seen kinds' = named files whose "
                     "names were hidden, does the memory find them; 'unseen kinds' = names held out "
                     "altogether, does it mislead; mAP 0-1, higher is better)")
    if state.get("name_vectors_in_use"):
        lines.append(f"what the names mean: {state['name_vectors_in_use']} named files, used by hybrid search")
        unread = chk.get("names") or {}
        if unread.get("unreadable"):
            eg = ", ".join(repr(e) for e in unread.get("examples", []))
            lines.append(f"  {unread['unreadable']} of {unread['files']} names read as Latin species names"
                         f"{f' (e.g. {eg})' if eg else ''}: the text model cannot read them, so hybrid search "
                         "ranks those files as recordings without a name, by their sound")
    now, then = state.get("files_now"), state.get("files")
    if isinstance(now, int) and isinstance(then, int) and now != then:
        lines.append(f"the index holds {now} files now, {then} when this ran"
                     + (": `soundseek adapt` again learns from the names added since" if now > then else ""))
    if state.get("files_since_adapt"):
        n = state["files_since_adapt"]
        lines.append(f"{n} file{'s' if n != 1 else ''} indexed since: not in the name memory until the next "
                     "`soundseek adapt` (or `soundseek index --adapt`)")
    return lines
