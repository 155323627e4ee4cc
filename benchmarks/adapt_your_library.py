"""The library-adaptation protocol of issue 18 on *your* labelled library (``adapt_library.py``
runs it on three corpus packages; this runs it on any folder).

Give a folder of audio, a labels file (``file,label``: paths relative to the folder, or
absolute; files not listed stay in the library under their names, unlabelled) and a queries
file (``query,label``: natural queries, written before you look at any result).  For each
protocol and fold the script lays out a copy of the library (hard links where it can) in which
some labelled files lose their names (``recorder/ZOOMnnnn.EXT``, embedded tags stripped):

* ``labels``: every file of half the labels (test sounds are kinds no name shows);
* ``files``: half the files of every label (new recordings of kinds the library names).

It then indexes the copy with ``--model`` (default: the shipped model, which has not heard your
library), reports content-only P@1 / P@5 / R@10 of the opaque files for their labels' queries
before and after ``soundseek adapt`` (``--seeds`` runs; each run's own checks decide what is
kept, exactly as the product does), and hybrid P@1 over the named files, the opaque files and
the whole library, before ``adapt`` and with what ``adapt`` installs.

    PYTHONPATH=src python benchmarks/adapt_your_library.py --library DIR --labels labels.csv \\
        --queries queries.csv [--model default] [--seeds 3] [--protocols labels files] \\
        [--work runs/adapt_yours] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import sys
import unicodedata
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adapt_hybrid import ranked_metrics  # noqa: E402
from adapt_library import OPAQUE_DIR, Source, is_opaque, run_fold  # noqa: E402
from experts import cpu_name  # noqa: E402


def read_table(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """The rows of a user's CSV as (line number, {column: value}).  The header is matched without
    case or surrounding spaces; a UTF-8 byte-order mark, CRLF line endings and a ``;`` or tab
    separator (spreadsheets in many locales) are accepted; blank lines are skipped.  A row with
    more fields than the header (an unquoted comma in a file name) or too few is refused."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except FileNotFoundError:
        raise SystemExit(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise SystemExit(f"{path}: not UTF-8 text (save it as CSV UTF-8)") from None
    lines = text.splitlines(keepends=True)
    hint = re.fullmatch(r"sep=(.)", lines[0].strip("\r\n")) if lines else None  # Excel's "sep=;" first line
    if hint:
        delimiter, lines = hint.group(1), lines[1:]
    else:
        first = lines[0] if lines else ""
        delimiter = "," if "," in first else max(";\t", key=first.count) if first.strip() else ","
    reader = csv.reader(lines, delimiter=delimiter)
    header = next(reader, None)
    names = [h.strip().lower() for h in header or []]
    missing = [c for c in columns if c not in names]
    if missing:
        raise SystemExit(f"{path}: needs a header row with the columns {','.join(columns)} "
                         f"(found: {','.join(header or []) or 'nothing'})")
    col = {c: names.index(c) for c in columns}
    rows = []
    for r in reader:
        if not any(v.strip() for v in r):
            continue
        if len(r) != len(header):
            raise SystemExit(f"{path}, line {reader.line_num + bool(hint)}: {len(r)} fields where the header has {len(header)} "
                             f"({delimiter.join(r)!r}); quote a value that holds a '{delimiter}'")
        rows.append((reader.line_num + bool(hint), {c: r[i] for c, i in col.items()}))
    return rows


def library_file(library: Path, name: str, where: str, given: Path | None = None) -> str:
    """``name`` from the labels file as a path relative to ``library`` (POSIX); clear errors.
    Accepted as spreadsheets and other systems write names: spaces around it, a Windows path, the
    other Unicode form of an accented name (macOS file systems keep ``é`` as ``e`` + accent), an
    absolute path through a link inside the library."""
    from soundseek.audio import is_audio_path

    base = [name, name.strip(), name.strip().replace("\\", "/")]  # spaces a spreadsheet added; Windows paths
    tries = base + [unicodedata.normalize(form, t) for t in base for form in ("NFC", "NFD")]
    for t in dict.fromkeys(tries):
        if t and (Path(t) if Path(t).is_absolute() else library / t).is_file():
            name = t
            break
    if not name.strip():
        raise SystemExit(f"{where}: no file name")
    p = Path(name)
    rel = p
    if p.is_absolute():
        rel = None
        for form in (Path(os.path.normpath(p)), p.resolve()):  # a link inside the library: as written
            for lib in (given or library, library):
                try:
                    rel = form.relative_to(lib)
                    break
                except ValueError:
                    continue
            if rel is not None:
                break
        if rel is None:
            raise SystemExit(f"{where}: {name} is not inside {library}")
    if ".." in rel.parts:
        raise SystemExit(f"{where}: {name}: give paths inside {library}, without '..'")
    if not (library / rel).is_file():
        raise SystemExit(f"{where}: {name} is not a file in {library}" + case_hint(library, rel))
    if rel.name.startswith("._"):
        raise SystemExit(f"{where}: {name} is a macOS resource file (a '._' companion of {rel.name[2:]}), not a "
                         "recording; label the file without the '._'")
    if not is_audio_path(rel):
        raise SystemExit(f"{where}: {name} is not an audio file the index reads (by its extension: .wav, .flac, "
                         ".ogg, .mp3, .aiff, ...; a Broadcast WAV named .bwf reads once renamed .wav)")
    return rel.as_posix()


def case_hint(library: Path, rel: Path) -> str:
    """'; did you mean ...' when a file differs from ``rel`` only in letter case (a name written
    on Windows, where case does not count)."""
    want = unicodedata.normalize("NFC", rel.as_posix()).casefold()
    for p in library.rglob("*"):
        got = p.relative_to(library).as_posix()
        if p.is_file() and unicodedata.normalize("NFC", got).casefold() == want:
            return f"; did you mean {got}? (letter case counts here)"
    return ""


def read_source(library: Path, labels_csv: Path, queries_csv: Path, work: Path | None = None) -> Source:
    """The library, its labels and its queries; clear errors for what does not fit."""
    from soundseek.audio import is_audio_path

    given = Path(os.path.abspath(library))  # as the user wrote it (a link to the library stays a link)
    library = library.resolve()
    if not library.is_dir():
        raise SystemExit(f"{library}: not a folder")
    if work is not None and (work.resolve() == library or library in work.resolve().parents):
        raise SystemExit(f"--work {work} is inside the library {library}: its copies would be read as part of "
                         "the library; give a --work folder outside it")
    labels: dict[str, str] = {}
    for line, r in read_table(labels_csv, ("file", "label")):
        where = f"{labels_csv}, line {line}"
        rel, label = library_file(library, r["file"], where, given), " ".join(r["label"].split())
        if not label:
            raise SystemExit(f"{where}: {rel} has no label; leave a file out of {labels_csv.name} to keep it "
                             "in the library unlabelled")
        if labels.setdefault(rel, label) != label:
            raise SystemExit(f"{where}: {rel} is labelled both {labels[rel]!r} and {label!r}")
    taken = sorted(f for f in labels if is_opaque(f))
    rest = sorted(p.relative_to(library).as_posix() for p in library.rglob("*")
                  if p.is_file() and is_audio_path(p) and p.relative_to(library).as_posix() not in labels)
    taken += [f for f in rest if is_opaque(f)]
    if taken:
        raise SystemExit(f"{library}: {taken[0]} has the name the protocol gives the files it hides "
                         f"({OPAQUE_DIR}/ZOOMnnnn.EXT); rename that folder in a copy of the library")
    queries = []
    for line, r in read_table(queries_csv, ("query", "label")):
        query, label = " ".join(r["query"].split()), " ".join(r["label"].split())
        if query and not label:
            raise SystemExit(f"{queries_csv}, line {line}: the query {query!r} has no label")
        if label and not query:
            raise SystemExit(f"{queries_csv}, line {line}: label {label!r} has no query text (leave the row out "
                             "to ask nothing for it)")
        if query:
            queries.append((query, label))
    if not queries:
        raise SystemExit(f"{queries_csv}: no queries")
    unknown = sorted({lab for _, lab in queries} - set(labels.values()))
    if unknown:
        folded = {lab.casefold(): lab for lab in labels.values()}
        hint = "".join(f"; {u!r}: did you mean {folded[u.casefold()]!r}?" for u in unknown[:3] if u.casefold() in folded)
        raise SystemExit(f"{queries_csv}: labels with no labelled file: {', '.join(unknown[:10])}{hint}"
                         + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
                         + f" (labels are matched exactly, case included, as {labels_csv} spells them)")
    if len(set(labels.values())) < 4:
        raise SystemExit(f"{labels_csv}: at least 4 labels are needed (half named, half opaque)")
    return Source(library.name, library, labels, rest, queries)


def describe(source: Source, protocols=("labels", "files"), copies: list[list[str]] | None = None) -> list[str]:
    """What the run will use, and what it cannot measure, before any indexing.  ``source``: the
    library as the run lays it out (:func:`without_copies`); ``copies``: the groups of identical
    files it left out (default: found in ``source``)."""
    copies = duplicate_files(source) if copies is None else copies
    labs = set(source.labels.values())
    asked = {lab for _, lab in source.queries}
    lines = [f"{source.name}: {plural(len(source.labels), 'labelled file')}, {plural(len(labs), 'label')}, "
             f"{plural(len(source.rest), 'unlabelled file')} (kept in the library under their names), "
             f"{plural(len(source.queries), 'query', 'queries')} for {plural(len(asked), 'label')}"]
    if labs - asked:
        lines.append(f"  {plural(len(labs - asked), 'label')} have no query (their files are in the library, never "
                     "scored): " + ", ".join(sorted(labs - asked)[:8]) + (" ..." if len(labs - asked) > 8 else ""))
    by_case: dict[str, set[str]] = {}
    for lab in labs:
        by_case.setdefault(lab.casefold(), set()).add(lab)
    twins = sorted(sorted(v) for v in by_case.values() if len(v) > 1)
    if twins:
        lines.append(f"  WARNING: labels that differ only in letter case are different labels here: "
                     + "; ".join(" / ".join(repr(x) for x in t) for t in twins[:4])
                     + " (under 'labels' the named ones give the hidden ones away); spell them alike if they are one")
    lines += [f"  {line}" for line in adapt_will_decline(source, protocols)]
    if copies:
        n = sum(len(g) - 1 for g in copies)
        what = plural(n, "file is a byte-identical copy", "files are byte-identical copies")
        lines.append(f"  {what} of others (e.g. {' = '.join(copies[0][:3])}): left out of the library, one file of "
                     "each kept (a hidden file's named copy would give its label away)")
    return lines


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 file``, ``2 files`` (``many``: the plural when it is not ``one`` + s)."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def adapt_will_decline(source: Source, protocols) -> list[str]:
    """The folds where ``adapt`` will find too few named files or distinct names to train on
    (:class:`soundseek.adapt.AdaptConfig`), by the same caption rules it uses on the laid-out copy.
    A forecast: embedded tags (which adapt may also read) are not looked at, and files the index
    then fails to read count here.  Where adapt declines, 'after' equals 'before'."""
    from adapt_library import opaque_files

    from soundseek.adapt import AdaptConfig
    from soundseek.index.captions import library_captions

    cfg = AdaptConfig()
    out = []
    for protocol in protocols:
        for fold in (0, 1):
            hidden = opaque_files(source, protocol, fold)
            shown = [f for f in sorted(source.labels) + source.rest if f not in hidden]
            paths = ["/library/" + Path(*Path(f).parts[source.drop_parts:]).as_posix() for f in shown]
            paths += [f"/library/{OPAQUE_DIR}/ZOOM{i + 1:04d}.wav" for i in range(len(hidden))]
            caps = library_captions(paths, root="/library", config=cfg.caption)
            named = [c for c in caps.values() if c is not None]
            names = len({c.text for c in named})
            if len(named) < cfg.min_named_files or names < cfg.min_groups:
                short = " and ".join(w for w, bad in ((f"{cfg.min_named_files} named files", len(named) <
                                                       cfg.min_named_files),
                                                      (f"{cfg.min_groups} distinct names", names < cfg.min_groups))
                                     if bad)
                out.append(f"{protocol} fold {fold}: {plural(len(named), 'file')} with names adapt can read, "
                           f"{plural(names, 'distinct name')}; adapt needs {short}: it will likely decline there, "
                           "and 'after' will equal 'before'" + ("" if named else " (files named by numbers only, or "
                                                             "by a folder alone, give adapt no names)"))
    return out


def without_copies(source: Source, copies: list[list[str]] | None = None) -> Source:
    """``source`` with one file of each group of byte-identical files (a labelled one first).
    Identical files given different labels are refused: which label the recording has is the
    user's to say."""
    drop = set()
    for group in duplicate_files(source) if copies is None else copies:
        labels = sorted({source.labels[f] for f in group if f in source.labels})
        if len(labels) > 1:
            raise SystemExit(f"{' and '.join(group[:2])} are the same recording (byte for byte) with two labels, "
                             f"{' and '.join(map(repr, labels))}; give it one (or remove a copy)")
        keep = min(group, key=lambda f: (f not in source.labels, f))
        drop.update(f for f in group if f != keep)
    if not drop:
        return source
    return replace(source, labels={f: lab for f, lab in source.labels.items() if f not in drop},
                   rest=[f for f in source.rest if f not in drop])


def duplicate_files(source: Source) -> list[list[str]]:
    """Groups of byte-identical files in the library (by size, then content hash, read in 1-MB
    blocks: long recordings of one length are never held in memory)."""
    import hashlib

    by_size: dict[int, list[str]] = {}
    for f in sorted(source.labels) + source.rest:
        by_size.setdefault((source.root / f).stat().st_size, []).append(f)
    groups: dict[str, list[str]] = {}
    for same in (fs for fs in by_size.values() if len(fs) > 1):
        for f in same:
            h = hashlib.sha256()
            with open(source.root / f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            groups.setdefault(h.hexdigest(), []).append(f)
    return sorted(g for g in groups.values() if len(g) > 1)


def not_indexed(work: Path, source: Source, protocol: str, fold: int, failed: list) -> list[str]:
    """The files the index could not read, by their names in the user's library: a labelled one
    stays in the counts (relevant, never found, before and after ``adapt``)."""
    name = f"{source.name}-{protocol}-fold{fold}"
    original = json.loads((work / "libs" / f"{name}.sources.json").read_text())
    out = []
    for path, why in failed:
        f = original.get(path, path)
        label = source.labels.get(f)
        out.append(f"not indexed: {f}: {why}" + (f" (labelled {label!r}: counts as never found)" if label
                                                  else " (unlabelled)"))
    return out


def hybrid_fold(work: Path, source: Source, protocol: str, fold: int, seed: int = 0) -> dict:
    """Hybrid P@1 (named / opaque / library) before ``adapt`` and with what it installs."""
    import soundseek
    from soundseek.adapt import AdaptConfig
    from soundseek.adapt.apply import adapt_and_install

    name = f"{source.name}-{protocol}-fold{fold}"
    truth = json.loads((work / "libs" / f"{name}.truth.json").read_text())
    idx = soundseek.Index.open(work / "index" / name)
    out = {mode: ranked_metrics(idx, source.queries, truth, mode) for mode in ("content", "metadata", "hybrid")}
    report = adapt_and_install(idx, AdaptConfig(seed=seed), progress=False)
    out["adapted_content"] = ranked_metrics(idx, source.queries, truth, "content")
    out["adapted_hybrid"] = ranked_metrics(idx, source.queries, truth, "hybrid")
    out["installed"] = {"model_kept": report.kept, "memory_kept": idx.name_memory.current() is not None,
                        "name_vectors": idx.name_vectors.current() is not None}
    idx.close()
    return out


def soundseek_version() -> str:
    """The package version, and the checkout's commit when it runs from one (what to send back
    with the numbers)."""
    import subprocess

    from soundseek.eval.runner import soundseek_version as installed_version

    version = installed_version()
    here = str(Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=5).stdout.strip()
        if commit and subprocess.run(["git", "-C", here, "status", "--porcelain", "--", "../src"],
                                     capture_output=True, text=True, timeout=5).stdout.strip():
            commit += ", with uncommitted changes to src/"
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{version} ({commit})" if commit else version


def weighted(folds: list[dict], get, count) -> float:
    w = np.array([count(f) for f in folds], dtype=float)
    return float(np.dot([get(f) for f in folds], w) / max(w.sum(), 1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--library", type=Path, required=True)
    p.add_argument("--labels", type=Path, required=True, help="CSV file,label")
    p.add_argument("--queries", type=Path, required=True, help="CSV query,label")
    p.add_argument("--model", default="default", help="the base model (default: the shipped one)")
    p.add_argument("--seeds", type=int, default=3, help="adapt runs per fold (at least 1)")
    p.add_argument("--protocols", nargs="+", default=["labels", "files"], choices=["labels", "files"])
    p.add_argument("--work", type=Path, default=Path("runs/adapt_yours"),
                   help="where the copies, indexes and the JSON go (relative to the current folder; "
                        "outside the library)")
    p.add_argument("--json", type=Path, default=None, help="the result (default: WORK/adapt_LIBRARY.json)")
    a = p.parse_args(argv)
    a.protocols = list(dict.fromkeys(a.protocols))  # "files files" runs once
    if a.seeds < 1:
        p.error("--seeds must be at least 1")
    import torch

    torch.set_num_threads(1)
    source = read_source(a.library, a.labels, a.queries, a.work)
    copies = duplicate_files(source)
    source = without_copies(source, copies)
    notes = describe(source, a.protocols, copies)
    for line in notes:
        print(line, flush=True)
    t0 = time.perf_counter()
    folds = []
    for protocol in a.protocols:
        for fold in (0, 1):
            first = a.work / "index" / f"{source.name}-{a.protocols[0]}-fold0" if folds else None
            t1 = time.perf_counter()
            print(f"{protocol} fold {fold}: copying {plural(len(source.labels) + len(source.rest), 'file')} to "
                  f"{a.work.resolve() / 'libs'}, indexing them with {a.model}, {plural(a.seeds, 'adapt run')} ...",
                  flush=True)
            r = run_fold(a.work, a.model, source, fold, a.seeds, first, protocol)
            r["not_indexed"] = not_indexed(a.work, source, protocol, fold, r["failed_files"])
            if not folds:  # the same files fail in every fold: say it once
                for line in r["not_indexed"]:
                    print("  " + line, flush=True)
            r["hybrid"] = hybrid_fold(a.work, source, protocol, fold)
            folds.append(r)
            print(f"{protocol} fold {fold}: {r['opaque_files']} of {plural(r['files'], 'indexed file')} opaque, "
                  f"{plural(r['queries'], 'query', 'queries')} asked; {time.perf_counter() - t1:.0f} s", flush=True)
    summary = {}
    for protocol in a.protocols:
        fs = [f for f in folds if f["protocol"] == protocol]
        n = lambda f: f["base"]["opaque"]["n_queries"]  # noqa: E731
        row = {"queries": int(sum(n(f) for f in fs)), "kept": [r["kept"] for f in fs for r in f["runs"]],
               "memory_kept": [r["memory_kept"] for f in fs for r in f["runs"]],
               "declined": sorted({r["reason"] for f in fs for r in f["runs"] if r["declined"]})}
        for m in ("p1", "p5", "r10"):
            row[f"before_{m}"] = weighted(fs, lambda f: f["base"]["opaque"][m], n)
            row[f"after_{m}"] = weighted(fs, lambda f: np.mean([r["served"]["opaque"][m] for r in f["runs"]]), n)
        row["after_p1_per_seed"] = [weighted(fs, lambda f, s=s: f["runs"][s]["served"]["opaque"]["p1"], n)
                                    for s in range(a.seeds)]
        for mode in ("content", "metadata", "hybrid", "adapted_content", "adapted_hybrid"):
            for view in ("named", "opaque", "library"):
                row[f"{mode}/{view}/p1"] = weighted(fs, lambda f: f["hybrid"][mode][view]["p1"],
                                                    lambda f: f["hybrid"][mode][view]["n_queries"])
        summary[protocol] = row
        print(f"{protocol}: {plural(row['queries'], 'query-fold')} (a query counts in each fold that hides files of "
              f"its label); adapt kept its tuned model in {sum(row['kept'])} of {plural(len(row['kept']), 'run')}, "
              f"its name memory in {sum(row['memory_kept'])}"
              + "".join(f"; declined: {why}" for why in row["declined"]))
        print(f"  content-only on the opaque files P@1 {row['before_p1']:.3f} -> "
              f"{row['after_p1']:.3f} (seeds {min(row['after_p1_per_seed']):.3f}-{max(row['after_p1_per_seed']):.3f}), "
              f"P@5 {row['before_p5']:.3f} -> {row['after_p5']:.3f}, R@10 {row['before_r10']:.3f} -> {row['after_r10']:.3f}")
        print("  hybrid P@1 named / opaque / library: before adapt "
              + " / ".join(f"{row[f'hybrid/{v}/p1']:.3f}" for v in ("named", "opaque", "library"))
              + ", after " + " / ".join(f"{row[f'adapted_hybrid/{v}/p1']:.3f}" for v in ("named", "opaque", "library"))
              + "; content after " + " / ".join(f"{row[f'adapted_content/{v}/p1']:.3f}" for v in ("named", "opaque", "library"))
              + "; metadata " + " / ".join(f"{row[f'metadata/{v}/p1']:.3f}" for v in ("named", "opaque", "library")))
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": cpu_name(), "cpus": os.cpu_count(), "python": platform.python_version(),
              "soundseek": soundseek_version(), "library": str(source.root), "labels_file": str(a.labels.resolve()),
              "queries_file": str(a.queries.resolve()), "protocols": a.protocols, "notes": notes,
              "model": a.model, "model_fingerprint": folds[0]["model_fingerprint"], "seeds": a.seeds,
              "minutes": round((time.perf_counter() - t0) / 60, 1), "summary": summary, "folds": folds}
    out = a.json or a.work / f"adapt_{source.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"wrote {out.resolve()}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:  # Ctrl-C (torch's threads otherwise end it in a traceback)
        print("\ninterrupted: your library and labels were only read; what this run wrote is under --work "
              "(runs/adapt_yours by default); run it again to start over", file=sys.stderr)
        raise SystemExit(130)
