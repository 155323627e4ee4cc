"""The index's encoders: its audio expert, its text–audio model (loaded lazily, with the reason
when it cannot be; the library-adapted one when ``soundseek adapt`` kept one), the fingerprint of the model's weights, and the pooling of a window's
frames into the vectors that are stored and searched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np

from ..experts import get_audio_expert
from ..experts.base import AudioFeatures, frame_chunks, is_frame_file
from ..features import pooled_vector, window_frames
from .catalog import Catalog
from .errors import short_error
from .types import IndexConfig

#: Windows pooled, run through the model's ``encode_audio`` and added to the vector stores at a
#: time: the model's activations stay small (~10 MB at 64, ~100 MB at 512) and no file's vectors
#: are ever stacked whole, so an 8-hour file indexes at the memory of a 5-minute one.
WINDOW_BATCH = 64


class Embedder:
    """Loads once, on first use: an audio-only index never imports torch (~1 CPU-s)."""

    #: written by ``soundseek adapt`` into the adapted model's folder; ``"kept": true`` serves it
    ADAPT_REPORT = "adapt_report.json"

    def __init__(self, config: IndexConfig, meta: Catalog, path: Path | None = None):
        """``path``: the index folder (where ``config.adapted_model`` lives; None: never adapted)."""
        self.config = config
        self.meta = meta
        self.path = path
        self._adapted: tuple | None = None  # (config.adapted_model, its folder or None) once checked
        self._expert = None
        self._model = None
        self._model_error: Exception | None = None
        self._weigher = None  # see sound_weigher

    # -- the audio expert ------------------------------------------------------------------------
    @property
    def expert(self):
        if self._expert is None:
            self._expert = get_audio_expert(self.config.audio_expert, **self.config.expert_options)
        return self._expert

    @expert.setter
    def expert(self, expert) -> None:
        """Use this audio expert (same key as the configured one, e.g. an instrumented copy in tests)."""
        self._expert = expert

    @property
    def loaded_expert(self):
        """The audio expert if it has been loaded, else None (stats must not load it)."""
        return self._expert

    @property
    def feature_key(self) -> str:
        """Expert key the indexed vectors were computed with (may lag behind after an upgrade
        of the expert until the next ``add``)."""
        return self.meta.get_meta("expert_key") or self.expert.key

    # -- the text–audio model --------------------------------------------------------------------
    @property
    def model(self):
        """The text–audio model, or None (audio-only index, or the model is not installed:
        :attr:`model_error` says why)."""
        if self._model is None and self._model_error is None and self.config.model:
            from ..models import load_model

            try:
                model = load_model(self.model_spec)
            except (FileNotFoundError, ValueError) as e:
                self._model_error = e
                return None
            expert = getattr(model.config, "audio_expert", None)
            if expert and expert != self.config.audio_expert:
                self._model_error = ValueError(
                    f"model {self.config.model!r} expects audio expert {expert!r}, "
                    f"this index uses {self.config.audio_expert!r}"
                )
                return None
            self._model = model
        return self._model

    @property
    def model_error(self) -> Exception | None:
        """Why the text–audio model could not be loaded (None: loaded, not tried, or none configured)."""
        return self._model_error

    @property
    def model_spec(self) -> str | None:
        """The model actually loaded: the library-adapted model's folder when ``soundseek adapt``
        kept one (:meth:`adapted_dir`), else :attr:`base_model_spec`."""
        adapted = self.adapted_dir()
        return str(adapted) if adapted is not None else self.base_model_spec

    @property
    def base_model_spec(self) -> str | None:
        """The configured model, never an adapted one (adaptation starts from it).  Indexes made
        before the yamnet default (audio expert ``aisfx``, model ``default``) keep the model they
        were built with, ``aisfx-minilm-v1``."""
        from ..models.model_dirs import model_for_expert

        return model_for_expert(self.config.model, self.config.audio_expert)

    def adapted_dir(self) -> Path | None:
        """The adapted model's folder when ``config.adapted_model`` names one whose report says
        kept, else None: a missing or discarded adaptation falls back to the base model, so an
        interrupted ``soundseek adapt`` never leaves an index without a model.  Checked once per
        value of ``config.adapted_model``."""
        name = self.config.adapted_model
        if self._adapted is None or self._adapted[0] != name:
            found = None
            if name and self.config.model and self.path is not None:
                d = Path(self.path) / name
                try:
                    kept = json.loads((d / self.ADAPT_REPORT).read_text()).get("kept") is True
                except (OSError, ValueError, AttributeError):
                    kept = False
                found = d if kept and (d / "config.json").is_file() else None
            self._adapted = (name, found)
        return self._adapted[1]

    def reset_model(self) -> None:
        """Forget the loaded model (``config.adapted_model`` changed): the next use loads the one now in use."""
        self._model = None
        self._model_error = None
        self._adapted = None

    def fingerprint(self) -> str | None:
        """Identity of the text–audio model's weights: a retrained model invalidates text vectors."""
        from ..models import weights_fingerprint

        model = self.model
        if model is None:
            return None
        return weights_fingerprint(model, salt=str(self.config.model))

    # -- pooling -------------------------------------------------------------------------------
    def pool(self, frames: np.ndarray) -> np.ndarray:
        """A run of frames -> its audio vector, pooled as the index's config says."""
        weigher = self.sound_weigher()
        return pooled_vector(frames, weigher.sound_weights(frames) if weigher is not None else None)

    def sound_weigher(self):
        """The expert's classifier for "non-silent" pooling (None: plain mean+max), found once.
        A classifier that exists but cannot be loaded is an error, never a silent fallback:
        query vectors pooled differently from the stored ones would rank wrongly."""
        if self._weigher is None:
            weigher = False
            if self.config.audio_pooling == "non-silent":
                from ..experts.tagger import tagger_for

                try:
                    tagger = tagger_for(self.config.audio_expert)
                except (ImportError, OSError, RuntimeError) as e:
                    raise RuntimeError(f"{self.config.audio_expert}'s classifier, needed to pool this index's "
                                       f"audio vectors, cannot be loaded ({short_error(e)})") from None
                if tagger is not None and "Silence" in tagger.names:
                    weigher = tagger
            self._weigher = weigher
        return self._weigher or None

    def pool_file(self, frames: np.ndarray) -> np.ndarray:
        """:meth:`pool` of a whole file's frames; frames mapped from a file (a long file's,
        :func:`soundseek.experts.base.is_frame_file`) are read chunk by chunk, so pooling an
        8-hour file never holds its frames (the same vector up to float rounding)."""
        if not is_frame_file(frames):
            return self.pool(frames)
        weigher = self.sound_weigher()
        total = weighted = top = top_kept = None
        n, w_sum = 0, 0.0
        for chunk in frame_chunks(frames):
            chunk = np.asarray(chunk, dtype=np.float32)
            n += len(chunk)
            total = _add(total, chunk.sum(axis=0, dtype=np.float64))
            top = _max(top, chunk.max(axis=0))
            if weigher is not None:
                w = np.clip(np.asarray(weigher.sound_weights(chunk), dtype=np.float32), 0.0, 1.0)
                weighted = _add(weighted, (chunk * w[:, None]).sum(axis=0, dtype=np.float64))
                w_sum += float(w.sum(dtype=np.float64))
                if (w >= 0.5).any():
                    top_kept = _max(top_kept, chunk[w >= 0.5].max(axis=0))
        if weigher is None or w_sum <= 1e-6:  # as pooled_vector: no weights, or all silence
            mean = total / n
        else:
            mean = weighted / w_sum
        high = top if weigher is None or top_kept is None else top_kept
        v = np.concatenate([mean.astype(np.float32), high])
        return v / max(float(np.linalg.norm(v)), 1e-12)

    def window_batches(self, feats: AudioFeatures, windows, size: int = WINDOW_BATCH,
                       with_frames: bool = True) -> Iterator[tuple[int, np.ndarray, list[np.ndarray]]]:
        """A file's windows, ``size`` at a time: ``(index of the first window, pooled audio
        vectors (n, d), a copy of each window's frames (empty unless ``with_frames``))``.  Frames
        are walked window by window (:func:`soundseek.features.window_frames`): no (windows x
        frames) mask, no copy of the file's frames, whatever its length; the copies are a
        window's size, so no block read from a long file is kept alive by them."""
        first, audio, segs = 0, [], []
        for i, fr in window_frames(feats, windows):
            audio.append(self.pool(fr))
            if with_frames:
                segs.append(np.array(fr))
            if len(audio) == size:
                yield first, np.stack(audio), segs
                first, audio, segs = i + 1, [], []
        if audio:
            yield first, np.stack(audio), segs

    def text_space(self, segments: list[np.ndarray]) -> np.ndarray | None:
        """Windows' frames -> their vectors in the model's text–audio space (None: no model)."""
        model = self.model
        if model is None:
            return None
        import torch  # only with a model: an audio-only index never imports torch (~1 CPU-s)

        from ..models import pad_frames

        chunks = []
        for i in range(0, len(segments), WINDOW_BATCH):
            frames, mask = pad_frames(segments[i : i + WINDOW_BATCH])
            with torch.inference_mode():
                chunks.append(model.encode_audio(frames, mask).float().numpy())
        return np.concatenate(chunks)


def _add(acc, x):
    return x if acc is None else acc + x


def _max(acc, x):
    return x if acc is None else np.maximum(acc, x)
