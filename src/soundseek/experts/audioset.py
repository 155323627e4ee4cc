"""The AudioSet ontology (632 classes: names, descriptions, hierarchy), shipped with the package.

YAMNet's 521 outputs are AudioSet classes; the ontology says what each one *is* (a sentence or
two) and where it sits ("Bark" under "Dog" under "Domestic animals, pets").  A label bridge can
embed those descriptions instead of bare names, and tags can name a parent class.  The file is
``soundseek/assets/audioset_ontology.json`` (AudioSet ontology by Google, CC BY-SA 4.0, fields
removed: see ``AUDIOSET_ONTOLOGY_LICENSE.md`` beside it); no network is ever needed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ONTOLOGY_FILE = Path(__file__).resolve().parent.parent / "assets" / "audioset_ontology.json"
N_ONTOLOGY_CLASSES = 632

# How a class is put into words for a sentence encoder (see class_text)
CLASS_TEXT_STYLES = ("name", "name+description", "name+first_sentence", "name+parent")

# a sentence ends at . ! ? after a lower-case letter, digit or closing bracket/quote and before a
# capital: "etc. Verbal" splits, "John M. Hanert" and "e.g. below" do not
_SENTENCE_END = re.compile(r"(?<=[a-z0-9)\"'][.!?])\s+(?=[A-Z])")


@dataclass(frozen=True)
class AudioSetClass:
    id: str  # the machine id ("mid"), e.g. "/m/05tny_"
    name: str
    description: str
    child_ids: tuple[str, ...]
    restrictions: tuple[str, ...]  # "abstract" (no labels of its own), "blacklist" (not rated)

    @property
    def first_sentence(self) -> str:
        return _SENTENCE_END.split(self.description.strip(), maxsplit=1)[0]


class AudioSetOntology:
    """The classes by id, each class's parents, and look-ups by display name."""

    def __init__(self, classes: list[AudioSetClass]):
        self.classes = {c.id: c for c in classes}
        if len(self.classes) != len(classes):
            raise ValueError("AudioSet ontology: duplicate class ids")
        parents: dict[str, list[str]] = {c.id: [] for c in classes}
        for c in classes:
            for child in c.child_ids:
                if child not in parents:
                    raise ValueError(f"AudioSet ontology: {c.id} names an unknown child {child}")
                parents[child].append(c.id)
        self.parent_ids = {k: tuple(v) for k, v in parents.items()}
        self.by_name = {c.name: c for c in classes}

    def __len__(self) -> int:
        return len(self.classes)

    def __getitem__(self, mid: str) -> AudioSetClass:
        try:
            return self.classes[mid]
        except KeyError:
            raise KeyError(f"{mid!r} is not an AudioSet ontology class id") from None

    def parents(self, mid: str) -> list[AudioSetClass]:
        """The classes that list ``mid`` as a child, in file order (a class may have several)."""
        return [self.classes[p] for p in self.parent_ids[self[mid].id]]

    def class_text(self, mid: str, style: str = "name", template: str = "{}") -> str:
        """How class ``mid`` is described to a sentence encoder:

        * ``name``: ``template`` filled with the display name ("the sound of Bark");
        * ``name+description``: that, a full stop, and the ontology's description;
        * ``name+first_sentence``: that, and the description's first sentence only;
        * ``name+parent``: the name followed by its parents' names in brackets
          ("the sound of Bark (Dog)"); top-level classes keep the bare name.
        """
        c = self[mid]
        if style == "name":
            return template.format(c.name)
        if style == "name+description":
            return f"{template.format(c.name)}. {c.description.strip()}"
        if style == "name+first_sentence":
            return f"{template.format(c.name)}. {c.first_sentence}"
        if style == "name+parent":
            ps = self.parents(mid)
            return template.format(f"{c.name} ({'; '.join(p.name for p in ps)})" if ps else c.name)
        raise ValueError(f"unknown class text style {style!r}; choose one of {', '.join(CLASS_TEXT_STYLES)}")


@lru_cache(maxsize=1)
def load_ontology(path: str | None = None) -> AudioSetOntology:
    """The shipped ontology (or the one at ``path``), parsed and checked once per process."""
    p = Path(path) if path else ONTOLOGY_FILE
    if not p.is_file():
        raise FileNotFoundError(
            f"AudioSet ontology not found at {p}: it ships inside the soundseek package "
            f"(soundseek/assets/audioset_ontology.json); reinstall soundseek, or pass the path of a "
            f"copy of ontology.json from https://github.com/audioset/ontology")
    with open(p, encoding="utf-8") as f:
        rows = json.load(f)
    return AudioSetOntology([
        AudioSetClass(r["id"], r["name"], r["description"], tuple(r.get("child_ids", ())),
                      tuple(r.get("restrictions", ()))) for r in rows])


def class_texts(mids: list[str], style: str = "name", template: str = "{}") -> list[str]:
    """:meth:`AudioSetOntology.class_text` for each id, from the shipped ontology."""
    if style not in CLASS_TEXT_STYLES:
        raise ValueError(f"unknown class text style {style!r}; choose one of {', '.join(CLASS_TEXT_STYLES)}")
    onto = load_ontology()
    return [onto.class_text(m, style, template) for m in mids]
