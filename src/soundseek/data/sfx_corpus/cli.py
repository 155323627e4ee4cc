"""``python -m soundseek.data.sfx_corpus``: (re)build the captions of one or both corpora."""

from __future__ import annotations

import argparse
from pathlib import Path

from .builder import build_all, write_outputs
from .corpora import CORPORA, ESC50
from .loaders import corpus_root_for

__all__ = ["main"]

DESCRIPTION = "The default model's training captions for the sfx-corpora, built from reviewed rules."


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m soundseek.data.sfx_corpus", description=DESCRIPTION)
    p.add_argument("--which", default="all", choices=["all", *CORPORA],
                   help="which corpus to (re)build; a later corpus is always checked against the earlier ones")
    p.add_argument("--corpus", type=Path, default=None,
                   help="the sfx-corpus folder; default: $SOUNDSEEK_SFX_CORPUS or ../shared beside a checkout")
    p.add_argument("--corpus2", type=Path, default=None,
                   help="the sfx-corpus-2 folder; default: $SOUNDSEEK_SFX_CORPUS2 or ../shared beside a checkout")
    p.add_argument("--esc50", type=Path, default=None,
                   help="ESC-50 fold 1 folder (checked for duplicates, never trained on); "
                        "default: $SOUNDSEEK_ESC50_FOLD1 or ../shared")
    p.add_argument("--out", type=Path, default=None,
                   help="write captions.csv / excluded.csv to OUT/<corpus>/ instead of the recipe folders")
    p.add_argument("--cache", type=Path, default=None, help="measurement cache (default: $SOUNDSEEK_SFX_CACHE)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    which = list(CORPORA) if a.which == "all" else [a.which]
    roots = {"sfx_corpus": a.corpus, "sfx_corpus2": a.corpus2}
    needed = set(which) | ({"sfx_corpus"} if "sfx_corpus2" in which else set())
    roots = {n: corpus_root_for(n, roots[n]) for n in needed}
    esc = corpus_root_for(ESC50.name, a.esc50)
    results = build_all(roots, esc, progress=not a.no_progress, which=which, cache_dir=a.cache)
    for name, result in results.items():
        out = CORPORA[name].recipe_dir if a.out is None else a.out / name
        cap, exc = write_outputs(result, out)
        print(f"== {name}")
        print(result.summary())
        print(f"wrote {cap} and {exc}")
    return 0
