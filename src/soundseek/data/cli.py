"""`soundseek data ...`: fetch benchmark datasets (via aac-datasets when installed) and inspect folders.

Wire into the main CLI with :func:`register`.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import typer

from .types import AudioCaptions

DATASETS = ("clotho", "audiocaps", "sounddescs")


@dataclass
class SplitInfo:
    dataset: str
    split: str
    clips: int
    captions: int
    missing_audio: int
    note: str = ""


def _quiet(fn: Callable[[], list[AudioCaptions]]) -> tuple[list[AudioCaptions], list[str]]:
    """Run a loader, collecting its warnings instead of printing them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = fn()
    return items, [str(w.message) for w in caught]


def _summarise(dataset: str, split: str, fn: Callable[[], list[AudioCaptions]]) -> SplitInfo:
    items, notes = _quiet(fn)
    files = {}
    for it in items:
        files.setdefault(Path(it.audio_path), it.exists)
    found = [m for n in notes if (m := re.search(r"(\d+) of (\d+) ids have no description", n))]
    note = "; ".join(f"{m.group(1)} of {m.group(2)} listed ids have no description (skipped)" for m in found)
    return SplitInfo(dataset, split, len(items), sum(len(it.captions) for it in items),
                     sum(1 for ok in files.values() if not ok), note)


def _first_line(path: Path) -> str:
    with path.open(encoding="utf-8", errors="replace") as f:
        return f.readline()


def inspect_folder(path: str | Path, audio_root: str | Path | None = None) -> list[SplitInfo]:
    """Counts for every dataset split recognised at ``path`` (a folder, or a captions CSV: one
    row per value of its ``split`` column, its ``file`` cells relative to ``audio_root`` when
    given, as a training recipe's ``audio_root`` reads them, else to the CSV's folder)."""
    from . import audiocaps, clotho, sounddescs
    from .captions_csv import load_caption_csv
    from .sfx_corpus import load_sfx_corpus

    path = Path(path).expanduser()
    if path.is_file() and path.suffix.lower() == ".csv":
        items, _ = _quiet(lambda: load_caption_csv(path, audio_root=audio_root))
        if "split" not in [h.strip() for h in _first_line(path).lstrip("\ufeff").strip().split(",")]:
            return [_summarise("captions-csv", "all", lambda: items)]  # (every row "train"): one row for the file
        splits = sorted({it.split for it in items})
        return [_summarise("captions-csv", s, lambda s=s: [it for it in items if it.split == s]) for s in splits]
    if audio_root is not None:
        raise ValueError(f"--audio-root applies to a captions CSV; {path} is a dataset folder, whose layout says "
                         "where its audio is")
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist")
    out: list[SplitInfo] = []
    for split in clotho.SPLITS:
        if clotho.find_captions_csv(path, split):
            out.append(_summarise("clotho", split, lambda s=split: clotho.load_clotho(path, s)))
    for split in audiocaps.SPLITS:
        csv_path = audiocaps.find_captions_csv(path, split)
        if csv_path and "audiocap_id" in _first_line(csv_path):
            out.append(_summarise("audiocaps", split, lambda s=split: audiocaps.load_audiocaps(path, s)))
    if (path / sounddescs.DESCRIPTIONS).is_file():
        for split in sounddescs.SPLITS:
            if (path / f"{split}_list.txt").is_file():
                out.append(_summarise("sounddescs", split, lambda s=split: sounddescs.load_sounddescs(path, s)))
    if (path / "manifest.csv").is_file() and (path / "audio").is_dir():
        items, _ = _quiet(lambda: load_sfx_corpus(path))
        for split in sorted({it.split for it in items}):
            out.append(_summarise("sfx-corpus", split, lambda s=split: [it for it in items if it.split == s]))
    return out


def layout_help(dataset: str, root: str | Path) -> str:
    from . import audiocaps, clotho, sounddescs

    return {"clotho": clotho.layout_help, "audiocaps": audiocaps.layout_help,
            "sounddescs": sounddescs.layout_help}[dataset](root)


def download(dataset: str, root: Path, subsets: list[str] | None = None) -> None:
    """Fetch ``dataset`` into ``root`` with aac-datasets; raise RuntimeError saying what to do otherwise."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if dataset == "sounddescs":
        raise RuntimeError("SoundDescs cannot be fetched automatically (the BBC archive needs a manual "
                           "download under its RemArc licence).\n" + layout_help(dataset, root))
    try:
        import aac_datasets  # optional: not a dependency of soundseek
    except ImportError:
        raise RuntimeError(
            "automatic download needs the optional package aac-datasets (`pip install aac-datasets`"
            + (", plus yt-dlp and ffmpeg for AudioCaps audio" if dataset == "audiocaps" else "")
            + "). Or download by hand:\n" + layout_help(dataset, root)
        ) from None
    root.mkdir(parents=True, exist_ok=True)
    cls, default = {
        "clotho": ("Clotho", ["dev", "val", "eval"]),
        "audiocaps": ("AudioCaps", ["train", "val", "test"]),
    }[dataset]
    for subset in subsets or default:
        try:
            getattr(aac_datasets, cls)(root=str(root), subset=subset, download=True)
        except Exception as e:  # offline, checksum, missing yt-dlp ...
            raise RuntimeError(f"aac-datasets could not fetch {dataset} {subset}: {e}\n"
                               + layout_help(dataset, root)) from e


def register(app: typer.Typer) -> None:
    """Add the ``data`` sub-app (``download``, ``info``) to ``app``."""
    data_app = typer.Typer(help="Benchmark datasets: download them, check a dataset folder.", no_args_is_help=True)

    @data_app.command("download")
    def download_cmd(
        dataset: str = typer.Argument(..., help="clotho | audiocaps | sounddescs"),
        root: Path = typer.Option(..., "--root", help="folder to download into"),
        subset: list[str] = typer.Option([], "--subset", help="aac-datasets subset (repeatable; default: all)"),
    ) -> None:
        """Download a benchmark dataset (uses aac-datasets if installed), else say what to fetch by hand."""
        try:
            download(dataset, root, subset or None)
        except (RuntimeError, ValueError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1)
        typer.echo(f"{dataset} is in {root}; check it with: soundseek data info {root}")

    @data_app.command("info")
    def info_cmd(path: Path = typer.Argument(..., help="dataset folder (or a captions CSV)"),
                 audio_root: Optional[Path] = typer.Option(None, "--audio-root", help="a captions CSV's audio "
                                                           "folder (its file cells are relative to it, as a "
                                                           "training recipe's audio_root; default: the CSV's "
                                                           "folder)")) -> None:
        """Count clips, captions and missing audio per split of the dataset(s) found at PATH."""
        from rich.console import Console
        from rich.table import Table

        try:
            rows = inspect_folder(path, audio_root)
        except (FileNotFoundError, ValueError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1)
        if not rows:
            typer.echo(f"no known dataset layout at {path}. Expected one of:\n"
                       + "\n".join(layout_help(d, path) for d in DATASETS), err=True)
            raise typer.Exit(1)
        table = Table(title=str(path))
        for col in ("dataset", "split", "clips", "captions", "missing audio", "note"):
            table.add_column(col, justify="right" if col in ("clips", "captions", "missing audio") else "left")
        for r in rows:
            table.add_row(r.dataset, r.split, f"{r.clips:,}", f"{r.captions:,}", f"{r.missing_audio:,}", r.note)
        Console(width=140).print(table)

    app.add_typer(data_app, name="data")


def main(argv: Optional[list[str]] = None) -> None:  # pragma: no cover - convenience entry
    app = typer.Typer()
    register(app)
    app(argv)
