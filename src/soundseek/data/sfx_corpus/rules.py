"""The reviewed rules (``recipes/<corpus>/rules.yaml``): parsing, slot filling, and the checks
every caption and label must pass."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .corpora import BANNED_NAMES, MAX_WORDS, MIN_WORDS, N_CAPTIONS, RULES_PATH, SPLITS, RulesError, stable_hash

__all__ = ["Rule", "Rules", "load_rules", "fill", "check_caption", "captions_for", "check_label"]


@dataclass
class Rule:
    index: int
    pattern: re.Pattern
    exclude: str | None = None
    label: str | None = None
    captions: list[str] = field(default_factory=list)
    slots: dict[str, dict[str, str]] = field(default_factory=dict)
    group: str | None = None


@dataclass
class Rules:
    rules: list[Rule]
    slots: dict[str, dict[str, str]]
    min_peak_dbfs: float = -40.0
    min_la99_dbfs: float | None = None
    min_duration_s: float = 0.05
    dup_min_similarity: float = 0.99
    dup_short_min_similarity: float = 0.997
    dup_short_frames: int = 25
    dup_candidate_cos: float = 0.97
    dup_esc_candidate_cos: float = 0.95
    long_s: float = 20.0
    window_s: float = 10.0
    hop_s: float = 10.0
    min_last_s: float = 5.0
    split: dict[str, float] = field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})

    def match(self, package_path: str) -> tuple[Rule, re.Match] | None:
        for rule in self.rules:
            m = rule.pattern.search(package_path)
            if m:
                return rule, m
        return None


def _lower_keys(d: dict | None) -> dict[str, dict[str, str]]:
    return {str(k): {str(a).lower(): str(b) for a, b in (v or {}).items()} for k, v in (d or {}).items()}


def load_rules(path: str | Path = RULES_PATH) -> Rules:
    """Parse and sanity-check the rules YAML (regexes compile; captioned rules have >= 5 templates)."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    rules = []
    for i, r in enumerate(raw.get("rules") or []):
        try:
            pat = re.compile(r["match"], re.IGNORECASE)
        except (KeyError, re.error) as e:
            raise RulesError(f"rule #{i}: bad or missing 'match': {e}") from None
        slots = _lower_keys(r.get("slots"))
        for name, spec in (r.get("sounds") or {}).items():
            parts = [x.strip() for x in str(spec).split("|")]
            if len(parts) != 3 or not all(parts):
                raise RulesError(f"rule #{i}: sounds entry {name!r} must be 'label | act | np', got {spec!r}")
            for table, value in zip(("label", "act", "np"), parts):
                slots.setdefault(f"s.{table}", {})[str(name).lower()] = value
        rule = Rule(i, pat, exclude=r.get("exclude"), label=r.get("label"), captions=list(r.get("captions") or []),
                    slots=slots, group=r.get("group"))
        if rule.exclude is None and (not rule.label or len(rule.captions) < N_CAPTIONS):
            raise RulesError(f"rule #{i} ({r['match']}): needs 'exclude' or a label and >= {N_CAPTIONS} captions")
        rules.append(rule)
    a, w, s = raw.get("audio") or {}, raw.get("windows") or {}, raw.get("split") or {}
    out = Rules(rules=rules, slots=_lower_keys(raw.get("slots")))
    out.min_peak_dbfs = float(a.get("min_peak_dbfs", out.min_peak_dbfs))
    if a.get("min_la99_dbfs") is not None:
        out.min_la99_dbfs = float(a["min_la99_dbfs"])
    out.min_duration_s = float(a.get("min_duration_s", out.min_duration_s))
    d = raw.get("duplicates") or {}
    out.dup_min_similarity = float(d.get("min_similarity", out.dup_min_similarity))
    out.dup_short_min_similarity = float(d.get("short_min_similarity", out.dup_short_min_similarity))
    out.dup_short_frames = int(d.get("short_frames", out.dup_short_frames))
    out.dup_candidate_cos = float(d.get("candidate_cos", out.dup_candidate_cos))
    out.dup_esc_candidate_cos = float(d.get("esc_candidate_cos", out.dup_esc_candidate_cos))
    out.long_s = float(w.get("long_s", out.long_s))
    out.window_s = float(w.get("window_s", out.window_s))
    out.hop_s = float(w.get("hop_s", out.hop_s))
    out.min_last_s = float(w.get("min_last_s", out.min_last_s))
    if s:
        out.split = {k: float(s[k]) for k in SPLITS}
    return out


_SLOT = re.compile(r"\{([a-z_]+)(?:\.([a-z_]+))?\}")


def fill(template: str, rule: Rule, rules: Rules, m: re.Match) -> str:
    """Fill ``{group}`` / ``{group.table}`` slots from the path match through the slot tables."""

    def sub(sm: re.Match) -> str:
        group, table = sm.group(1), sm.group(2)
        value = m.groupdict().get(group)
        if value is None:
            raise RulesError(f"rule #{rule.index}: template {template!r} uses {{{group}}}, "
                             "but the match has no such group")
        key = f"{group}.{table}" if table else group
        tab = rule.slots.get(key) or rules.slots.get(key)
        if tab is None or value.lower() not in tab:
            raise RulesError(f"rule #{rule.index}: no slot value for {key}={value!r}; add it to the slots")
        return tab[value.lower()]

    text = _SLOT.sub(sub, template)
    return text[0].upper() + text[1:] if text else text


def check_caption(text: str, where: str) -> None:
    words = text.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        raise RulesError(f"{where}: caption has {len(words)} words (need {MIN_WORDS}-{MAX_WORDS}): {text!r}")
    low = text.lower()
    for name in BANNED_NAMES:
        if re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", low):
            raise RulesError(f"{where}: caption names {name!r}: {text!r}")


def captions_for(file: str, rule: Rule, rules: Rules, m: re.Match) -> list[str]:
    """Five captions: with more than five templates, which five depends on a hash of the file."""
    filled = [fill(t, rule, rules, m) for t in rule.captions]
    if len(filled) > N_CAPTIONS:
        k = stable_hash(file) % len(filled)
        filled = (filled[k:] + filled[:k])[:N_CAPTIONS]
    for c in filled:
        check_caption(c, f"rule #{rule.index} on {file}")
    return filled


def check_label(label: str, where: str) -> None:
    if not label or len(label.split()) > 4:
        raise RulesError(f"{where}: label {label!r} should be 1-4 words")
    for name in BANNED_NAMES:
        if re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", label):
            raise RulesError(f"{where}: label names {name!r}")
