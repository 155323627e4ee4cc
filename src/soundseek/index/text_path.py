"""The text side of queries.  A text query is encoded by the sentence encoder and the model's
text head; when the model's text side was saved into the index as numpy arrays
(``text_side.json`` + ``.npz``, keyed by the model fingerprint) and is still fresh, both run
without torch (:mod:`soundseek.models.text_side`, :mod:`soundseek.experts.minilm_fast`).

:meth:`TextPath.encoder` and :meth:`TextPath.wrap_encoder` are the seam the server's query
batching wraps (``soundseek.server.batching.install_text_batching``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..experts import get_text_expert
from . import lock as writer_lock
from .catalog import Catalog
from .embedder import Embedder
from .types import IndexConfig
from .window_store import WindowStore


class TextPath:
    """Which encoder text queries use, and the saved text side kept in step with the model."""

    def __init__(self, path: Path, config: IndexConfig, meta: Catalog, embedder: Embedder, vectors: WindowStore,
                 writer: writer_lock.WriterLock):
        self.path = path
        self.writer = writer  # the index's writer lock: only while it holds it is the text side saved
        self.config = config
        self.meta = meta
        self.embedder = embedder
        self.vectors = vectors
        self._text_expert = None
        self._checked = False  # text vectors compared with the model once per process
        self._fast = None  # (TextSide, torch-free text expert) once checked fresh; False: unusable
        self.fast_text_expert: str | None = None  # the sentence encoder of the text side in use
        self._kept: tuple | None = None  # (its name, the encoder) kept across a reset

    # -- the torch-free side ---------------------------------------------------------------------
    def export(self, fingerprint: str | None) -> bool:
        """Save the model's numpy text side into the index, keyed by ``fingerprint`` (the one the
        text vectors were computed with).  False when the model has none or the folder is
        read-only; text search then stays on the torch path."""
        from ..models.text_side import export_text_side, model_source_stamp

        if not self.writer.held:
            return False  # readers never write to the index: `soundseek index` or `repair` exports it
        model = self.embedder.model
        stamp = model_source_stamp(self.embedder.model_spec)
        if model is None or fingerprint is None or stamp is None or self.vectors.text is None:
            return False
        side = export_text_side(model)
        if side is None:
            return False
        try:
            side.save(self.path, model_fingerprint=fingerprint, model_spec=self.spec_key(self.embedder.model_spec),
                      text_expert=model.config.text_expert, text_dim=self.vectors.text.dim, model_source=stamp)
        except OSError:
            return False
        self._fast = None
        return True

    def stamp_and_export(self) -> None:
        """After the text vectors were (re)computed by a writer: record the model fingerprint
        and export the text side for it (``add`` and ``soundseek repair`` end with this)."""
        if self.embedder.model is not None and self.vectors.text is not None:
            fp = self.embedder.fingerprint()
            self.meta.set_meta("model_fingerprint", fp)
            self.export(fp)

    def export_if_stale(self) -> None:
        """:meth:`stamp_and_export` unless a fresh text side is there: at a run's first
        checkpoint, so that searches while a long first run goes on, or after it was killed, do
        not load torch (12–28 s a query instead of 0.5 s)."""
        if self.read_fresh_header() is None:
            self.stamp_and_export()

    def model_replaced(self) -> bool:
        """A writer replaced the model in use (``Index.set_adapted_model``): recompute every
        window vector from the feature store when its fingerprint changed, stamp it and export
        the new text side.  True when the vectors were rebuilt."""
        self.embedder.reset_model()
        self._fast = None
        if self.vectors.audio is None or self.embedder.model is None:
            return False
        rebuilt = self.meta.get_meta("model_fingerprint") != self.embedder.fingerprint()
        if rebuilt:
            self.vectors.rebuild(save=True)
        self.stamp_and_export()
        self._checked = True
        return rebuilt

    def read_fresh_header(self) -> dict | None:
        """The saved text side's header if it still matches this index's model and vectors."""
        from ..models.text_side import TextSide, model_source_stamp

        h = TextSide.read_header(self.path)
        text, audio, spec = self.vectors.text, self.vectors.audio, self.embedder.model_spec
        if (h is None or not self.config.model or text is None or audio is None
                or h.get("model_fingerprint") != self.meta.get_meta("model_fingerprint")
                or h.get("text_dim") != text.dim
                or len(text) != len(audio)
                or set(self.config.text_expert_options) - {"batch_size", "threads", "device"}):
            return None
        inside = self.inside_index(spec)
        if h.get("model_spec") != self.spec_key(spec) and not (  # text sides saved before spec_key
                inside is not None and Path(str(h.get("model_spec", ""))).name == inside.name):
            return None
        saved, now = h.get("model_source"), model_source_stamp(spec)
        if inside is not None and isinstance(saved, list) and now is not None:
            saved, now = _without_mtimes(saved), _without_mtimes(now)  # a copied index has new mtimes
        return h if saved == now else None

    def inside_index(self, spec) -> Path | None:
        """``spec``'s place inside the index folder when it is the adapted model the index serves
        (``Path("adapted")``), else None (a shipped model's name such as "default" is never
        resolved as a path: from inside the index folder it would look like one)."""
        adapted = self.embedder.adapted_dir()
        if not spec or adapted is None or str(spec) != str(adapted):
            return None
        return Path(self.config.adapted_model)

    def spec_key(self, spec) -> str:
        """``spec`` as the text side records it: a model inside the index folder by its place
        there (``index:adapted``), so an index opened by another spelling of its path, moved
        or copied still finds its torch-free text side (an adapted index opened by an absolute
        path took 6 s a query on the torch path instead of 0.5 s); other specs as they are."""
        inside = self.inside_index(spec)
        return f"index:{inside.as_posix()}" if inside is not None else str(spec)

    def fast_side(self):
        """(TextSide, torch-free text expert) when the saved text side is fresh, else False;
        checked once (see :meth:`reset`)."""
        if self._fast is None:
            self._fast = False
            h = self.read_fresh_header()
            if h is not None:
                from ..experts.minilm_fast import get_fast_text_expert
                from ..models.text_side import TextSide

                try:
                    name = h.get("text_expert", "")
                    kept = self._kept[1] if self._kept and self._kept[0] == name else None
                    encoder = kept or get_fast_text_expert(name)
                    if encoder is not None:
                        self._fast = (TextSide.load(self.path, h), encoder)
                        self.fast_text_expert = name
                except (ImportError, OSError, RuntimeError, ValueError, KeyError):
                    self._fast = False  # e.g. tokenizers missing: the torch path still works
        return self._fast

    @property
    def fast_state(self):
        """What the last check found, without checking: None (not checked yet), False (torch
        path) or the (TextSide, encoder) pair in use."""
        return self._fast

    def reset(self) -> None:
        """Forget the check: the next text query looks at the saved text side again.  The
        sentence encoder in use is kept for it (with whatever :meth:`wrap_encoder` put around it,
        e.g. the server's query batching) when the new side reads the same text expert."""
        if self._fast:
            self._kept = (self.fast_text_expert, self._fast[1])
        self._fast = None

    def disable_fast(self) -> None:
        """Answer text queries on the torch path (until :meth:`reset`): to compare the two."""
        self._fast = False

    # -- the torch side --------------------------------------------------------------------------
    @property
    def text_expert(self):
        """The sentence encoder of the torch path (loaded on first use)."""
        if self._text_expert is None:
            self._text_expert = get_text_expert(self.embedder.model.config.text_expert,
                                                **self.config.text_expert_options)
        return self._text_expert

    @text_expert.setter
    def text_expert(self, expert) -> None:
        """Use this sentence encoder on the torch path (same interface as a TextExpert)."""
        self._text_expert = expert

    def recheck(self) -> None:
        """The vectors were reloaded from disk: compare them with the model again at the next
        :meth:`refresh_once` (an earlier check may have rebuilt only an in-memory copy)."""
        self._checked = False

    def refresh_once(self) -> bool:
        """Once per process: rebuild the text vectors when the model changed (or appeared) since
        indexing.  True when this call did the check."""
        if self._checked:
            return False
        self._refresh_text_vectors()
        self._checked = True
        return True

    def _refresh_text_vectors(self) -> None:
        if self.vectors.audio is None or self.read_fresh_header() is not None:
            return  # a fresh text side says the model is the one the vectors were made with: no torch
        if self.embedder.model is None:
            return
        fp = self.embedder.fingerprint()
        stale = self.vectors.text is None or len(self.vectors.text) != len(self.vectors.audio)
        if stale or self.meta.get_meta("model_fingerprint") != fp:
            self.vectors.rebuild()  # saved only by a writer; a reader keeps them in memory
            if self.writer.held:
                self.meta.set_meta("model_fingerprint", fp)

    # -- the seam query batching wraps -------------------------------------------------------
    def encoder(self):
        """The encoder text queries will use (``encode([text]).sentence``): the torch-free one
        when the saved text side is fresh, else the text expert (loading it)."""
        fast = self.fast_side()
        return fast[1] if fast else self.text_expert

    def wrap_encoder(self, fn: Callable[[Any], Any]) -> Any:
        """Replace the encoder text queries will use by ``fn(current)``; returns the new one."""
        fast = self.fast_side()
        if fast:
            side, encoder = fast
            new = fn(encoder)
            self._fast = (side, new)
        else:
            new = fn(self.text_expert)
            self._text_expert = new
        return new


def _without_mtimes(stamp: list) -> list:
    """A model-source stamp (``[[path, size, mtime_ns, digest], ...]``) without its mtimes:
    sizes and sampled digests (first and last 64 KiB) still tell a changed file.  Used only for
    the adapted model inside the index, which only ``adapt`` rewrites, and ``adapt`` always
    rewrites its small ``adapt_report.json`` (hashed whole) too; a same-size edit of a weights
    file's middle by hand would go unseen."""
    return [[e[0], e[1], e[3]] if isinstance(e, list) and len(e) == 4 else e for e in stamp]
