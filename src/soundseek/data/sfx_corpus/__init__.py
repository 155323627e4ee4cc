"""The default model's training captions for the sfx-corpora, built from reviewed rules.

Two corpora share one builder: ``sfx_corpus`` (shared/data/sfx-corpus) and ``sfx_corpus2``
(shared/data/sfx-corpus-2), each with its recipe folder ``recipes/<name>/`` (``rules.yaml`` and the
two outputs). ``python -m soundseek.data.sfx_corpus [--which all|sfx_corpus|sfx_corpus2]`` reads
each corpus ``manifest.csv``, measures every file (decodable? near-silent by A-weighted level?
byte- or sample-identical to another? the same recording as another file or as an ESC-50 fold 1
clip, by audio fingerprint?), applies the ordered rules and writes, deterministically:

* ``recipes/<name>/captions.csv``: ``file,start_s,end_s,split,label,caption_1..caption_5``
  (``file`` relative to the corpus folder; long ambiences become several windowed rows);
* ``recipes/<name>/excluded.csv``: ``file,reason`` for every file left out.

Every manifest file ends up in exactly one of the two. Files listed in
``recipes/<name>/splits_pinned.csv`` keep that split (the first corpus's v1 splits, so its old test
split stays comparable). ``load_sfx_corpus(audio_root)`` / ``load_sfx_corpora(...)`` read the
shipped captions against a copy of the corpora (the package never needs them to import).

Layout: :mod:`.corpora` (the corpora and shared constants), :mod:`.rules`, :mod:`.measurements`,
:mod:`.splits`, :mod:`.builder`, :mod:`.loaders` and :mod:`.cli` (``__main__``).  The recipe
files stay in ``soundseek/data/recipes/<corpus>/`` (package data).
"""

from __future__ import annotations

from .builder import BuildResult, Reference, build, build_all, esc50_reference, read_manifest, write_outputs
from .cli import main
from .corpora import (
    BANNED_NAMES,
    CAPTION_COLUMNS,
    CAPTIONS_PATH,
    CORPORA,
    ESC50,
    EXCLUDED_PATH,
    MAX_WORDS,
    MEASURE_VERSION,
    MIN_WORDS,
    N_CAPTIONS,
    RECIPE_DIR,
    RECIPES,
    RULES_PATH,
    SPLITS,
    CorpusSpec,
    RulesError,
    stable_hash,
)
from .loaders import corpus_root, corpus_root_for, load_sfx_corpora, load_sfx_corpus
from .measurements import AudioStats, default_cache_dir, measure, measure_all, windows_for
from .rules import Rule, Rules, captions_for, check_caption, check_label, fill, load_rules
from .splits import assign_splits, group_key, read_pinned, stem_of

__all__ = [
    # corpora and constants
    "BANNED_NAMES", "CAPTION_COLUMNS", "CAPTIONS_PATH", "CORPORA", "ESC50", "EXCLUDED_PATH", "MAX_WORDS",
    "MEASURE_VERSION", "MIN_WORDS", "N_CAPTIONS", "RECIPE_DIR", "RECIPES", "RULES_PATH", "SPLITS",
    "CorpusSpec", "RulesError", "stable_hash",
    # rules
    "Rule", "Rules", "load_rules", "fill", "check_caption", "check_label", "captions_for",
    # measurements
    "AudioStats", "windows_for", "measure", "measure_all", "default_cache_dir",
    # splits
    "stem_of", "group_key", "assign_splits", "read_pinned",
    # build
    "BuildResult", "Reference", "read_manifest", "esc50_reference", "build", "build_all", "write_outputs",
    # loaders
    "load_sfx_corpus", "load_sfx_corpora", "corpus_root_for", "corpus_root",
    "main",
]  # fmt: skip
