"""Train/val/test splits: files of one recording group share a split, stratified by label, with
pinned splits of an earlier version kept."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

from .corpora import SPLITS, stable_hash
from .rules import Rule

__all__ = ["stem_of", "group_key", "assign_splits", "read_pinned"]


def stem_of(name: str) -> str:
    """``rain_01`` -> ``rain``; ``swordhit_12b`` -> ``swordhit``; ``Blast3alt`` -> ``blast``;
    ``default_grass_footstep.1`` -> ``default_grass_footstep``."""
    s = Path(name).stem.lower()
    while True:
        t = re.sub(r"(?:[_.\-\s]*\d+[a-z]?|alt)$", "", s)
        if t == s or not t:
            return s
        s = t


def group_key(package_path: str, rule: Rule | None = None, m: re.Match | None = None) -> str:
    """Files with the same key share a split: same folder + same stem (or the rule's ``group``)."""
    if rule is not None and rule.group and m is not None:
        return "rule:" + rule.group.format(**{k: (v or "").lower() for k, v in m.groupdict().items()})
    folder = package_path.rsplit("/", 1)[0] if "/" in package_path else ""
    return f"{folder}/{stem_of(package_path.rsplit('/', 1)[-1])}"


def assign_splits(groups: dict[str, tuple[str, int]], fractions: dict[str, float],
                  fixed: dict[str, str] | None = None) -> dict[str, str]:
    """Split per group, stratified by label: ``groups`` maps key -> (label, n_files).

    Within each label, groups are taken largest first (ties: by a hash of the key). The largest
    goes to train. For a label with >= 5 files, the largest group holding at most a quarter of them is
    put in test first (so such labels appear in test whenever a small enough group exists), and
    likewise one in val for labels with >= 10 files. Every other group goes to the split furthest
    below its target share of the label's files (ties: val, test, train). Deterministic: depends
    only on keys, labels and sizes. Groups in ``fixed`` keep the split given there (pinned splits of
    an earlier version) and count towards their label's shares; the rest is assigned as above,
    except that a label that already has a pinned group in a split gets no extra "first" group there.
    """
    fixed = fixed or {}
    by_label: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for key, (label, n) in groups.items():
        by_label[label].append((key, n))
    out: dict[str, str] = {}
    order = {"val": 0, "test": 1, "train": 2}
    for label in sorted(by_label):
        members = sorted(by_label[label], key=lambda kn: (-kn[1], stable_hash(kn[0]), kn[0]))
        total = sum(n for _, n in members)
        have = dict.fromkeys(SPLITS, 0)
        pinned = [kn for kn in members if kn[0] in fixed]
        for key, n in pinned:
            out[key] = fixed[key]
            have[fixed[key]] += n
        rest = [kn for kn in members if kn[0] not in fixed]
        if not pinned and rest:
            out[rest[0][0]] = "train"
            have["train"] += rest[0][1]
            rest = rest[1:]
        for split, min_files in (("test", 5), ("val", 10)):
            small = [kn for kn in rest if kn[1] <= max(1.0, total / 4)]
            if total >= min_files and small and not have[split]:
                out[small[0][0]] = split
                have[split] += small[0][1]
                rest = [kn for kn in rest if kn[0] != small[0][0]]
        for key, n in rest:
            split = max(SPLITS, key=lambda s: (fractions[s] * total - have[s], -order[s]))
            out[key] = split
            have[split] += n
    return out


def read_pinned(path: Path) -> dict[str, str]:
    """``file -> split`` of a ``splits_pinned.csv`` (empty when there is none)."""
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as f:
        return {r["file"]: r["split"] for r in csv.DictReader(f)}
