"""The two sfx corpora and ESC-50 fold 1 (names, folders, env variables, recipe files) and the
constants every step of the caption builder shares."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "RECIPES", "RECIPE_DIR", "RULES_PATH", "CAPTIONS_PATH", "EXCLUDED_PATH", "N_CAPTIONS", "MIN_WORDS", "MAX_WORDS",
    "BANNED_NAMES", "CorpusSpec", "CORPORA", "ESC50", "MEASURE_VERSION", "CAPTION_COLUMNS", "SPLITS", "RulesError",
    "stable_hash",
]  # fmt: skip


RECIPES = Path(__file__).resolve().parents[1] / "recipes"  # soundseek/data/recipes (package data)
RECIPE_DIR = RECIPES / "sfx_corpus"
RULES_PATH = RECIPE_DIR / "rules.yaml"
CAPTIONS_PATH = RECIPE_DIR / "captions.csv"
EXCLUDED_PATH = RECIPE_DIR / "excluded.csv"
N_CAPTIONS = 5
MIN_WORDS, MAX_WORDS = 6, 20
#: Names that must never appear in a caption or label (games / packages the audio came from).
BANNED_NAMES = ("0ad", "0 a.d", "wesnoth", "openclonk", "clonk", "widelands", "lugaru", "gcompris", "lmms",
                "sonic pi", "sonic-pi",
                # second corpus
                "ufoai", "ufo: alien invasion", "ufo ai", "qabcs", "bucklespring", "buckle", "lincity",
                "openttd", "opensfx", "ttd", "minetest", "mesecons", "homedecor", "xdecor", "btanks",
                "battle tanks", "wordwarvi", "word war vi", "lomiri", "freedesktop", "netpanzer", "micropolis",
                "simcity", "pekka", "kana", "plee", "simutrans", "freedink", "dink", "freeciv", "frozen bubble",
                "frozen-bubble", "trackballs", "tuxfootball", "tux", "extremetuxracer", "etr", "foobillard",
                "dustracing", "dust racing", "7kaa", "seven kingdoms", "xboard", "pomodoro", "libreoffice",
                "gnome", "kde", "ubuntu")


@dataclass(frozen=True)
class CorpusSpec:
    """One corpus: its name (recipe folder), its folder name under shared/data, its env variable."""

    name: str
    folder: str
    env: str

    @property
    def recipe_dir(self) -> Path:
        return RECIPES / self.name

    @property
    def captions_path(self) -> Path:
        return self.recipe_dir / "captions.csv"

    @property
    def excluded_path(self) -> Path:
        return self.recipe_dir / "excluded.csv"

    @property
    def rules_path(self) -> Path:
        return self.recipe_dir / "rules.yaml"


#: The corpora, in build order (a later corpus drops copies of an earlier one's files).
CORPORA: dict[str, CorpusSpec] = {
    "sfx_corpus": CorpusSpec("sfx_corpus", "sfx-corpus", "SOUNDSEEK_SFX_CORPUS"),
    "sfx_corpus2": CorpusSpec("sfx_corpus2", "sfx-corpus-2", "SOUNDSEEK_SFX_CORPUS2"),
}
#: ESC-50 fold 1: never trained on; training clips that are the same recording are excluded.
ESC50 = CorpusSpec("esc50_fold1", "esc50-fold1", "SOUNDSEEK_ESC50_FOLD1")
#: Bump when what ``measure`` computes changes (invalidates the measurement cache).
MEASURE_VERSION = 2
CAPTION_COLUMNS = ["file", "start_s", "end_s", "split", "label"] + [f"caption_{i}" for i in range(1, N_CAPTIONS + 1)]
SPLITS = ("train", "val", "test")


class RulesError(ValueError):
    """The rules file is inconsistent (bad slot, caption length, banned name ...)."""


def stable_hash(text: str) -> int:
    """A platform- and run-independent hash of ``text`` (sha256 prefix): which caption templates a
    file gets and the tie-break order of split groups depend on it, never on Python's ``hash``."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
