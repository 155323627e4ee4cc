"""The name memory (:mod:`soundseek.index.name_memory`) of a library: built from the named
files' weak captions and the files' neighbours by sound in ``MemoryConfig.spaces`` (shipped: the
aisfx sound-effects CNN's mean embedding per file, centred on the library,
:mod:`soundseek.features.sfx`; also available: the model's window vectors and the expert's own
frames), and checked on held-out named files before it is used.

The check asks two questions with the library's own captions as queries, ranking held-out files
by content with and without the memory:

- *seen kinds* ("files"): half the files of every name that has two or more files lose their
  names; does the memory find them?  (New recordings of kinds the library already names.)
- *unseen kinds* ("groups"): whole names are held out (30 %); does the memory mislead?  (Kinds
  the library never names: their queries should read like no caption, so nothing changes.)

Each question is asked on held-out splits and its mAP averaged: at least ``repeats``, and more
(up to ``max_repeats``) until ``held_files_target`` files were held out in all, so that a small
library's verdict does not hang on one file moving a rank.  Not knowing which
of the two cases a library's unnamed files are, the memory is kept when the first mAP's gain
outweighs the second's loss by ``min_gain`` and the loss stays below ``max_loss`` (or, where the
first question cannot show a gain because its files are already found, when the loss is at most
``min_gain``: :func:`memory_verdict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from ..features.sfx import SFX_MAX_S
from ..index.name_memory import NameMemory, build_memory, centred_embeddings, file_embeddings
from .scoring import rank_metrics, split_groups, text_vectors, window_vectors


@dataclass
class MemoryConfig:
    """Settings of the name memory (saved in the adaptation report)."""

    enabled: bool = True
    # where "sounds alike" is measured: "model" (the model's window vectors, averaged per file),
    # "features" (the expert's frames averaged per file, centred on the library) and "sfx" (the
    # aisfx sound-effects CNN's mean embedding per file, centred: soundseek.features.sfx); k
    # neighbours in each.  Where aisfx cannot be loaded, "sfx" falls back to FALLBACK_SPACES.
    spaces: tuple[str, ...] = ("sfx",)
    sfx_max_s: float = SFX_MAX_S  # "sfx": seconds of each file decoded (from its start)
    k: int = 5  # nearest named files per file (per space)
    temperature: float = 0.05  # softmax over their cosine
    threshold: float = 0.5  # a query must read like a caption (sentence cosine) above this
    weight: float = 6.0
    min_gain: float = 0.01  # seen-kinds mAP gain minus unseen-kinds mAP loss must reach this
    max_loss: float = 0.03  # and the unseen-kinds held-out mAP may fall by at most this much
    saturated: float = 0.99  # seen kinds found this well without it: no gain can show (memory_verdict)
    holdout_fraction: float = 0.3  # share of names held out for the unseen-kinds question
    repeats: int = 3  # held-out splits per question at least (seeds seed, seed+1, ...), mAP averaged
    # ... and more, up to max_repeats, until the splits hold this many held-out files in all: a
    # small library's question holds 7-12 files, where one file moving a rank changes mAP by 0.05
    held_files_target: int = 300
    max_repeats: int = 12

    def to_dict(self) -> dict:
        return asdict(self)


#: the spaces used in place of "sfx" where aisfx cannot hear the library
FALLBACK_SPACES = ("model", "features")


def hear_library(files, features: np.ndarray, cfg: MemoryConfig, audio_expert: str | None = None,
                 progress: bool = False) -> tuple[MemoryConfig, np.ndarray | None, str]:
    """The sfx vectors of ``files`` when ``cfg.spaces`` asks for them (``features``: the files'
    mean expert frames, whose aisfx columns a quality-profile index already has), and the config
    to build the memory with.  Where aisfx cannot hear the library (not installed; fewer than two
    named files readable now), the "sfx" space becomes :data:`FALLBACK_SPACES`; the note says
    why, and how many files could not be read."""
    from ..features.sfx import sfx_available, sfx_vectors, stored_sfx

    if "sfx" not in cfg.spaces:
        return cfg, None, ""
    fallback = replace(cfg, spaces=tuple(dict.fromkeys(s for sp in cfg.spaces
                                                       for s in (FALLBACK_SPACES if sp == "sfx" else (sp,)))))
    paths = [f.path for f in files]
    sfx = stored_sfx(features, audio_expert)
    if sfx is None:
        if not sfx_available():
            return fallback, None, ("aisfx is not installed (`pip install --no-deps aisfx`): sounds alike by the "
                                    "model and the expert's frames instead")
        sfx = sfx_vectors(paths, None, None, cfg.sfx_max_s, progress=progress)
    heard = np.isfinite(sfx).all(1)
    note = ""
    if not heard.all():
        first = paths[int(np.flatnonzero(~heard)[0])]
        note = (f"aisfx could not read {int((~heard).sum())} of {len(files)} files (first: {first}); are they "
                "still there?")
    if int((heard & np.array([f.named for f in files], dtype=bool)).sum()) < 2:
        return fallback, None, (note + "; " if note else "") + ("too few named files heard: sounds alike by the "
                                                                "model and the expert's frames instead")
    return cfg, sfx, note


def memory_for(model, files, caption_of: np.ndarray, captions: np.ndarray, cfg: MemoryConfig,
               windows: tuple[np.ndarray, np.ndarray] | None = None, fingerprint: str = "",
               features: np.ndarray | None = None, sfx: np.ndarray | None = None) -> NameMemory:
    """The memory of ``files`` (LibraryFile, all windows) for ``model``; ``caption_of[f]``: the
    caption row of file f (-1: unnamed); ``features``, ``sfx``: see :func:`sound_spaces`."""
    wins, starts = windows if windows is not None else window_vectors(model, files)
    return build_memory(np.array([f.item_id for f in files]), sound_spaces(files, wins, starts, cfg, features, sfx),
                        caption_of, captions, cfg.k, cfg.temperature, cfg.threshold, cfg.weight, fingerprint)


def sound_spaces(files, wins: np.ndarray, starts: np.ndarray, cfg: MemoryConfig,
                 features: np.ndarray | None = None, sfx: np.ndarray | None = None) -> list[np.ndarray]:
    """One (F, E) unit vector per file for each of ``cfg.spaces``; ``features`` (F, D): each
    file's mean expert frame (default: from the files' window frames, :func:`mean_frames`);
    ``sfx`` (F, 512): each file's mean aisfx embedding (:func:`soundseek.features.sfx.sfx_vectors`,
    NaN rows: not heard), needed when the spaces name it."""
    out = []
    for space in cfg.spaces:
        if space == "model":
            out.append(file_embeddings(wins, starts))
        elif space == "features":
            out.append(centred_embeddings(mean_frames(files) if features is None else features))
        elif space == "sfx":
            if sfx is None:
                raise ValueError("the 'sfx' space needs each file's aisfx vector (soundseek.features.sfx.sfx_vectors)")
            out.append(centred_embeddings(sfx))
        else:
            raise ValueError(f"unknown sound space {space!r} (model, features, sfx)")
    return out


def mean_frames(files) -> np.ndarray:
    """(F, D) each file's expert frames averaged over its windows (LibraryFile.windows)."""
    return np.stack([np.concatenate(f.windows).mean(0) for f in files]).astype(np.float32)


def held_files(group: np.ndarray, seed: int) -> np.ndarray:
    """Seen kinds: half (rounded down) of the files of every group with two or more files."""
    rng = np.random.default_rng(seed)
    out = np.zeros(len(group), dtype=bool)
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        if len(members) >= 2:
            out[rng.permutation(members)[: len(members) // 2]] = True
    return out


def check_memory(model, files, named_idx: np.ndarray, group: np.ndarray, captions: np.ndarray,
                 cfg: MemoryConfig, seed: int = 0, windows=None, queries: np.ndarray | None = None,
                 features: np.ndarray | None = None, sfx: np.ndarray | None = None) -> dict:
    """Both held-out questions (module docstring) for ``files``; ``named_idx`` the rows of the
    named files, ``group[j]`` the caption row of named file ``named_idx[j]``; ``queries[c]``: the
    sentence vector that asks for caption row c (default: the caption itself); ``features``,
    ``sfx``: see :func:`sound_spaces`."""
    queries = captions if queries is None else queries
    wins, starts = windows if windows is not None else window_vectors(model, files)
    emb = sound_spaces(files, wins, starts, cfg, features, sfx)
    ids = np.array([f.item_id for f in files])
    out: dict = {"spaces": list(cfg.spaces)}
    for name, split in (("seen_kinds", held_files),
                        ("unseen_kinds", lambda g, s: split_groups(g, cfg.holdout_fraction, s))):
        runs, held_total = [], 0
        for r in range(max(1, cfg.repeats, cfg.max_repeats)):
            if r >= max(1, cfg.repeats) and held_total >= cfg.held_files_target:
                break
            held = split(group, seed + r)
            if not held.any() or held.all():
                continue
            held_total += int(held.sum())
            caption_of = np.full(len(files), -1)
            caption_of[named_idx[~held]] = group[~held]
            mem = build_memory(ids, emb, caption_of, captions, cfg.k, cfg.temperature, cfg.threshold, cfg.weight)
            rows, g = named_idx[held], group[held]
            asked = np.unique(g)
            q = text_vectors(model, queries[asked])
            s = np.maximum.reduceat(q @ wins.T, starts, axis=1)[:, rows]
            bonus = np.stack([mem.bonus(queries[c]) for c in asked])[:, rows]
            rel = g[None, :] == asked[:, None]
            runs.append((rank_metrics(s, rel).to_dict(), rank_metrics(s + bonus, rel).to_dict(), int(held.sum()),
                         int(len(asked))))
        out[name] = {"base": _mean([r[0] for r in runs]), "memory": _mean([r[1] for r in runs]),
                     "files": runs[0][2], "names": runs[0][3], "splits": len(runs)} if runs else None
    seen, unseen = out["seen_kinds"], out["unseen_kinds"]
    out["kept"], note = memory_verdict(seen, unseen, cfg)
    out["reason"] = (f"seen kinds mAP {seen['base']['map']:.3f} -> {seen['memory']['map']:.3f} ({evidence(seen)}), "
                     f"unseen kinds {unseen['base']['map']:.3f} -> {unseen['memory']['map']:.3f} ({evidence(unseen)})"
                     f"{note}" if seen and unseen else "too few files named alike to check")
    return out


def evidence(question: dict) -> str:
    """How much a check's number rests on: ``3 files x 12 splits`` (a few files: a weak check)."""
    files = question["files"]
    return f"{files} file{'s' if files != 1 else ''} x {question['splits']} splits" + (
        ", few: a weak check" if files < 5 else "")


def memory_verdict(seen: dict | None, unseen: dict | None, cfg: MemoryConfig) -> tuple[bool, str]:
    """Keep the memory?  ``seen``/``unseen``: the two questions' {"base", "memory"} mAPs.  When
    the seen kinds are already found without it (base mAP ≥ ``saturated``: e.g. a few names, each
    heard apart from the rest), its gain cannot show, so it is kept when it costs neither question
    more than ``min_gain`` (nor the unseen kinds more than ``max_loss``); otherwise gain − loss ≥
    ``min_gain`` and loss ≤ ``max_loss``.  Returns (kept, a note for the reason)."""
    if seen is None:
        return False, ""
    gain = seen["memory"]["map"] - seen["base"]["map"]
    loss = unseen["base"]["map"] - unseen["memory"]["map"] if unseen else 0.0
    if seen["base"]["map"] >= cfg.saturated and unseen is not None:
        kept = loss <= min(cfg.min_gain, cfg.max_loss) and gain >= -cfg.min_gain
        return kept, (" (the seen kinds are found without it; " + ("it costs the unseen kinds nothing)" if kept
                                                                     else "it costs the unseen kinds)"))
    return gain - loss >= cfg.min_gain and loss <= cfg.max_loss, ""


def _mean(metrics: list[dict]) -> dict:
    """Key-wise mean of RankMetrics dicts (counts summed)."""
    out = {}
    for k in metrics[0]:
        vals = [m[k] for m in metrics]
        out[k] = int(sum(vals)) if k.startswith("n_") else float(np.mean(vals))
    return out
