"""Weak captions from what a library already says about each file: its name, folders, tags.

A sound designer's library is mostly named by hand ("BIRD Chirping Sparrow Morning 01.wav",
``DOORWood_Creak Long_JD_Lib.wav``, ``sounds/animals/moose_00.ogg``); field recordings are not
("ZOOM0001.WAV", "Track 12.wav", "3f9a1c2e.wav").  :func:`weak_caption` turns the first kind into
a short caption ("door wood creak long", "animals moose") and says ``None`` for the second, so
adaptation (:mod:`soundseek.adapt.trainer`) learns only from files whose names carry meaning.
It lives in the index layer because files indexed after ``soundseek adapt`` are captioned the
same way, with the library's context saved by ``adapt`` (:class:`CaptionContext`), so that hybrid
search knows what their names mean too (:mod:`.name_match`).

Rules, in order:

* words: CamelCase, underscores, hyphens, dots and spaces split (``index.file_info.split_words``);
  numbers, take numbers and hash-like chunks dropped;
* UCS: a name starting with a CatID (``DOORWood_...``) has the CatID expanded (package table
  ``index/data/ucs_categories.json``) and keeps only its FXName part (creator / library ids after
  it are not about the sound);
* technical words (mono, stereo, 48k, 24bit, take, v2, wav, mix, final, ...) and recorder names
  (zoom, tascam, rec, track, audio, untitled, ...) are dropped, and so is a recorder app's default
  name when it is all the name says ("Voice 001", :data:`DEVICE_DEFAULT_NAMES`); so are generic folder names
  (sounds, sfx, data, assets, usr, share, ...);
* the name's words are the caption's core; the last ``folder_depth`` folders add context in
  front; embedded titles/descriptions (when the catalog found any) name files whose own name
  is opaque (``use_embedded="always"``: they also extend named files), capped;
* opaque: when the *name* (and the embedded tags) leave no word, the file gets no caption: folder
  words alone ("sounds/misc") say too little about one file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

from .file_info import expand_ucs, ideograph, other_script, split_words, ucs_name_words

#: Words about the recording, the file or the take, never about the sound.
TECHNICAL_WORDS = frozenset("""
mono stereo st ste ms lr xy surround binaural ambisonic ambix fuma
wav wave ogg mp3 flac aif aiff aifc m4a wma opus pcm bwf rf64 caf
bit bits khz hz kbps k fs sr
take tk tks takes alt alts var vars variation variations version ver rev revision
v mix mixed mixdown final finals edit edited edits master mastered premaster norm normalized
normalised processed raw clean cleaned render rendered bounce bounced export exported
copy dup duplicate new orig original backup temp tmp test tests untitled unnamed unknown
file files sample samples clip clips sound sounds audio snd sfx fx foley soundfx soundeffect soundeffects
rec recording recordings track tracks part pt pts seg segment ch chan channel
loop loops looped seamless oneshot
zoom tascam sony roland marantz olympus nagra dr zh zhn memo img mov mvi dsc vid pxl
lib library pack collection vol volume misc miscellaneous other others various general default
www com org net http https freesound soundbible
""".split())

#: Folder names that only organise files (game/asset layouts, operating system paths).
GENERIC_FOLDERS = frozenset("""
data core res resource resources asset assets extracted usr share local lib games game base pk3 ocg
media content contents main src source sources bin build dist public static
sound sounds sfx snd audio audios fx foley samples sample effects effect wav wave ogg
library libraries lib misc other others new old temp tmp export exports bounce bounces import imports
home users user documents desktop downloads music
mod mods addon addons plugin plugins package packages module modules vendor extras deps thirdparty
""".split())

#: A recorder app's default name when it is the whole name ("Voice 001.m4a" on Android phones,
#: "voice_memo_8k.wav", "Voice Note 3"): the app's word for every recording, not the sound
#: ("female_voice_01.wav" keeps "female voice", "Note A4.wav" its "note"; "New Recording 12" and
#: "Memo 4" leave no word anyway).
DEVICE_DEFAULT_NAMES = frozenset({("voice",), ("voice", "note"), ("voice", "notes"), ("dictation",), ("interview",)})
#: Most name words a caption keeps (long descriptive names are truncated, not dropped).
MAX_NAME_WORDS = 12
_HEX = re.compile(r"^[0-9a-f]{6,}$")
#: an embedded text that names the software or person that touched the file, not the sound
#: ("Processed by SoX" on every ESC-50 clip, "Modified by <person>", "Encoded with Lavf58")
_STAMP = re.compile(r"^\W*(processed|encoded|created|made|generated|converted|edited|modified|saved|"
                    r"exported|rendered|ripped)\s+(by|with|using|in)\b", re.IGNORECASE)
_VOWEL = re.compile(r"[aeiouyàáâãäåæèéêëìíîïòóôõöøœùúûüýÿ]")  # "été" is a word


@dataclass(frozen=True)
class CaptionConfig:
    """How weak captions are built (part of the adaptation report)."""

    folder_depth: int = 2  # folders above the file that add context (0: name only)
    # embedded titles / descriptions (ID3, Vorbis, RIFF INFO, BWF): "fallback" = only for files
    # whose name says nothing (on the corpora, tags of named files were mostly noise: genre "Pop",
    # "Modified by <person>", freesound ids), "always", or "never"
    use_embedded: str = "fallback"
    max_embedded_words: int = 8
    min_name_words: int = 1  # fewer content words in the name (+ tags): opaque, no caption
    drop_words: tuple[str, ...] = ()  # extra words to ignore (a library's own jargon)
    # folder words found above more than this share of a library's files ("My SFX", the game's
    # name) say nothing about one file: :func:`library_captions` drops them from folder context
    max_folder_share: float = 0.5


@dataclass(frozen=True)
class WeakCaption:
    """A file's caption, the words it came from, and its group (files named alike)."""

    text: str
    name_words: tuple[str, ...]
    folder_words: tuple[str, ...] = ()
    embedded_words: tuple[str, ...] = ()
    sources: tuple[str, ...] = field(default=())

    @property
    def group(self) -> str:
        """Files with the same caption are one group: a hold-out never splits a group."""
        return self.text


def _content(words: Iterable[str], extra: frozenset[str] = frozenset()) -> list[str]:
    out = []
    for w in words:
        w = w.lower()
        if len(w) < 2 and not ideograph(w) or w in TECHNICAL_WORDS or w in extra:
            continue
        # "deadbeef", "brrt", "mp", "wvr": not words (the vowel rule is for the Latin script only:
        # лягушка, βάτραχος, カエル, 鳥 are words)
        if _HEX.match(w) or not (_VOWEL.search(w) or other_script(w)):
            continue
        if re.fullmatch(r"(v|take|tk|t|ch)\d*", w):
            continue
        out.append(w)
    return out


#: endings that mark a Latin genus or species name (Corvus, Canis, Turdus, platyrhynchos, aluco
#: is not one: at least one of the pair must have such an ending); bare -a, -i, -es, which many
#: words of living languages end in (ukulele strum, iguana hisses, lluvia fuerte), are not enough
_LATIN_END = re.compile(r"(us|um|ae|ii|is|os|ix|ensis|oides|ops|yx)$")


def scientific_name(words: Iterable[str], known: Callable[[str], bool]) -> bool:
    """Whether a file's own name starts with a Latin scientific name (``Corvus_corone_03.wav``,
    ``Strix_aluco_male_call.wav``, ``Gryllus campestris.flac``): its first two words (genus and
    species; more words may follow) are not words the text model holds whole (``known``: "crow"
    yes, "corvus" = co ##r ##vus no), and one of them, of four or more letters, has a Latin ending
    (:data:`_LATIN_END`).  ``words``: the name's own words as written, repeats kept
    (:func:`name_words_as_written`: ``Gallus_gallus`` is two words, its caption keeps one).  An
    English text model cannot read such names (MiniLM puts "corvus corone" nowhere near "a
    crow"), so they say nothing for or against a file.  Missed: a genus
    or species the vocabulary holds (``Parus major``, ``Lynx lynx``, ``Rana temporaria``: MiniLM
    does read "rana" as a frog) and a genus alone (``Corvus_01``); caught wrongly, a few sound
    names (``bassdrum stomp``, ``ukulele strum``; none of the 3,314 named files of both corpora),
    which are then ranked as files without a name, neither held up nor down by it."""
    ws = [w for w in words if w.isalpha()]
    if len(ws) < 2 or known(ws[0]) or known(ws[1]):
        return False
    return any(len(w) >= 4 and _LATIN_END.search(w) for w in ws[:2])


def name_words_as_written(path: str | os.PathLike) -> tuple[str, ...]:
    """A file name's words in order, repeats kept (``Gallus_gallus_01.wav`` -> gallus, gallus):
    what :func:`scientific_name` reads."""
    return tuple(split_words(Path(path).stem))


def _dedupe(words: Iterable[str]) -> list[str]:
    seen, out = set(), []
    for w in words:
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def stem_words(stem: str) -> tuple[list[str], bool]:
    """Words of a file name without its extension, and whether it started with a UCS CatID."""
    ucs = ucs_name_words(stem)  # UCS: CatID_FXName_CreatorID_SourceID; only the CatID and FXName describe the sound
    return (split_words(stem), False) if ucs is None else (ucs, True)


def folder_context(path: str | os.PathLike, root: str | os.PathLike | None = None, depth: int = 2) -> list[str]:
    """Words of the last ``depth`` meaningful folders above the file (below ``root`` if given)."""
    parent = Path(path).parent
    parts = list(parent.parts)
    if root is not None:
        try:
            parts = list(parent.relative_to(root).parts)
        except ValueError:
            pass
    kept: list[list[str]] = []
    for part in reversed(parts):
        if len(kept) >= depth:
            break
        words = expand_ucs(part) or split_words(part)
        words = [w for w in words if w not in GENERIC_FOLDERS]
        if re.fullmatch(r"[\d.\-_ ]*", part) or not words:
            continue  # "1.16", "sounds", "Sound.ocg": organisation, not content
        kept.append(words)
    return [w for words in reversed(kept) for w in words]


def weak_caption(path: str | os.PathLike, embedded: Iterable[str] = (), root: str | os.PathLike | None = None,
                 config: CaptionConfig = CaptionConfig(),
                 common_folder_words: frozenset[str] = frozenset()) -> WeakCaption | None:
    """The weak caption of one file, or None when its name is opaque (see module docstring).
    ``common_folder_words``: folder words to leave out (see :func:`library_captions`)."""
    extra = frozenset(w.lower() for w in config.drop_words)
    words, ucs = stem_words(Path(path).stem)
    name = _dedupe(_content(words, extra))[:MAX_NAME_WORDS]
    if tuple(name) in DEVICE_DEFAULT_NAMES:
        name = []
    emb: list[str] = []
    if config.use_embedded not in ("fallback", "always", "never"):
        raise ValueError(f"use_embedded must be fallback, always or never, not {config.use_embedded!r}")
    if config.use_embedded == "always" or (config.use_embedded == "fallback" and not name):
        for text in embedded:
            if not _STAMP.match(text):
                emb.extend(_content(split_words(text), extra))
        emb = [w for w in _dedupe(emb) if w not in name][: config.max_embedded_words]
    if len(name) + len(emb) < config.min_name_words:
        return None
    folders = _dedupe(_content(folder_context(path, root, config.folder_depth), extra)) if config.folder_depth else []
    folders = [w for w in folders if w not in name and w not in emb and w not in common_folder_words]
    text = " ".join(folders + name + emb)
    sources = tuple(s for s, ok in (("ucs", ucs), ("name", bool(name)), ("folder", bool(folders)),
                                    ("embedded", bool(emb))) if ok)
    return WeakCaption(text, tuple(name), tuple(folders), tuple(emb), sources)


@dataclass(frozen=True)
class CaptionContext:
    """What a library's captions depend on beyond one file: its root, the folder words too common
    to say anything (:func:`library_captions`) and the rules.  Saved by ``adapt`` so that files
    indexed later are captioned as the library was."""

    root: str
    common_folder_words: frozenset[str] = frozenset()
    config: CaptionConfig = CaptionConfig()

    def caption(self, path: str | os.PathLike, embedded: Iterable[str] = (),
                roots: Iterable[str] = ()) -> WeakCaption | None:
        """``path``'s caption as the library's were made.  A file outside the saved root (a
        library that moved, a folder indexed later) takes its folder words below the one of
        ``roots`` that holds it, or none: never the folders above a library."""
        root = self.root
        if not _inside(path, root):
            root = next((r for r in sorted(roots, key=len, reverse=True) if _inside(path, r)), None)
            if root is None:
                return weak_caption(path, embedded, None, replace(self.config, folder_depth=0), frozenset())
        return weak_caption(path, embedded, root, self.config, self.common_folder_words)

    def to_json(self) -> dict:
        c = self.config
        return {"root": self.root, "common_folder_words": sorted(self.common_folder_words),
                "config": {"folder_depth": c.folder_depth, "use_embedded": c.use_embedded,
                           "max_embedded_words": c.max_embedded_words, "min_name_words": c.min_name_words,
                           "drop_words": list(c.drop_words), "max_folder_share": c.max_folder_share}}

    @classmethod
    def from_json(cls, d: dict) -> "CaptionContext":
        """From :meth:`to_json`; ValueError when ``d`` is not one (damaged, or a newer format)."""
        try:
            c = dict(d["config"])
            c["drop_words"] = tuple(c.get("drop_words", ()))
            return cls(str(d["root"]), frozenset(d.get("common_folder_words", ())), CaptionConfig(**c))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a caption context ({type(e).__name__}: {e})") from e


def _inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    try:
        Path(path).parent.relative_to(root)
        return bool(str(root))
    except ValueError:
        return False


def caption_context(paths: list[str], root: str | os.PathLike | None = None,
                    config: CaptionConfig = CaptionConfig()) -> CaptionContext:
    """A library's caption context: ``root`` defaults to the files' common folder, and folder
    words above more than ``config.max_folder_share`` of the files are common."""
    if root is None:
        root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths]) if paths else ""
    counts: dict[str, int] = {}
    if config.folder_depth:
        for p in paths:
            for w in set(folder_context(p, root, config.folder_depth)):
                counts[w] = counts.get(w, 0) + 1
    common = frozenset(w for w, n in counts.items() if len(paths) > 2 and n > config.max_folder_share * len(paths))
    return CaptionContext(str(root), common, config)


def library_captions(paths: list[str], embedded: dict[str, list[str]] | None = None,
                     root: str | os.PathLike | None = None,
                     config: CaptionConfig = CaptionConfig()) -> dict[str, WeakCaption | None]:
    """Weak captions of a whole library (:func:`caption_context`)."""
    if not paths:
        return {}
    ctx = caption_context(paths, root, config)
    embedded = embedded or {}
    return {p: ctx.caption(p, embedded.get(p, ())) for p in paths}
