"""LAION-CLAP (Wu et al., 2023) audio and text towers via ``transformers`` (laion/clap-htsat-unfused).

Audio: 48 kHz, cut into 10-s windows (the model's input length); each window goes through the
ClapFeatureExtractor (64-band log-mel, hop 480, repeat-padding for short clips) and the HTS-AT
tower; its projected 512-d embedding, L2-normalised, is one frame.  The clip vector is the
normalised mean of the frames.  Text: the projected 512-d text embedding, L2-normalised, is the
sentence vector; token features are the RoBERTa tower's last layer (768-d).  Both sides live in
one space, so ``native:clap-audio+clap-text`` needs no trained head.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .base import AudioExpert, AudioFeatures, TextExpert, TextFeatures
from .hf_quiet import quiet_weights
from .hf_text import offline_tokenizer, split_tokens
from .base import weights_tag
from .weights import get_source, resolve_hf

__all__ = ["ClapAudioExpert", "ClapTextExpert"]


class ClapAudioExpert(AudioExpert):
    name = "clap-audio"
    version = "1"
    sample_rate = 48000
    dim = 512
    window_s = 10.0

    def __init__(self, random_init: bool = False, weights: str | None = None, seed: int = 0,
                 hop_s: float = 10.0, batch_size: int = 4):
        from transformers import ClapAudioConfig, ClapAudioModelWithProjection, ClapFeatureExtractor

        self.hop_s = float(hop_s)
        self.batch_size = batch_size
        if random_init:
            torch.manual_seed(seed)
            self.model = ClapAudioModelWithProjection(ClapAudioConfig(projection_dim=self.dim, enable_fusion=False))
            self.features = ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad")
            self.version = "random"
        else:
            path = resolve_hf(self.name, weights)
            with quiet_weights():
                self.model = ClapAudioModelWithProjection.from_pretrained(path, local_files_only=True)
            self.features = ClapFeatureExtractor.from_pretrained(path, local_files_only=True)
            self.weights_path = path
            self.source = get_source(self.name).source
        self.dim = int(self.model.config.projection_dim)
        self.tag_version(h=None if self.hop_s == 10.0 else f"{self.hop_s:g}", w=weights_tag(weights),
                         s=seed if random_init else None)
        self.model.eval()

    def windows(self, wave: np.ndarray) -> list[np.ndarray]:
        """10-s windows every ``hop_s``; the last one ends at the clip's end (no crop at random)."""
        win, hop = int(self.window_s * self.sample_rate), int(self.hop_s * self.sample_rate)
        if len(wave) <= win:
            return [wave]
        starts = list(range(0, len(wave) - win + 1, hop))
        if starts[-1] + win < len(wave):
            starts.append(len(wave) - win)
        return [wave[s : s + win] for s in starts]

    @torch.inference_mode()
    def embed(self, waves: list[np.ndarray]) -> list[AudioFeatures]:
        out = []
        for wave in waves:
            pieces = self.windows(np.asarray(wave, dtype=np.float32).reshape(-1))
            rows = []
            for i in range(0, len(pieces), self.batch_size):
                feats = self.features(pieces[i : i + self.batch_size], sampling_rate=self.sample_rate,
                                      return_tensors="pt")
                emb = self.model(input_features=feats["input_features"], is_longer=feats.get("is_longer")).audio_embeds
                rows.append(F.normalize(emb, dim=-1))
            frames = torch.cat(rows)
            pooled = F.normalize(frames.mean(0), dim=-1)
            out.append(AudioFeatures(frames.numpy().astype(np.float32), pooled.numpy().astype(np.float32),
                                     hop_s=self.hop_s, window_s=self.window_s))
        return out


class ClapTextExpert(TextExpert):
    name = "clap-text"
    version = "1"
    dim = 512
    token_dim = 768
    max_length = 77  # LAION-CLAP's training length

    def __init__(self, random_init: bool = False, weights: str | None = None, seed: int = 0, batch_size: int = 32):
        from transformers import AutoTokenizer, ClapTextConfig, ClapTextModelWithProjection

        self.batch_size = batch_size
        if random_init:
            torch.manual_seed(seed)
            self.model = ClapTextModelWithProjection(ClapTextConfig(projection_dim=self.dim))
            self.tokenizer = offline_tokenizer("roberta", self.max_length)
            self.version = "random"
        else:
            path = resolve_hf(self.name, weights)
            with quiet_weights():
                self.model = ClapTextModelWithProjection.from_pretrained(path, local_files_only=True)
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.weights_path = path
            self.source = get_source(self.name).source
        self.tag_version(w=weights_tag(weights), s=seed if random_init else None)
        self.dim = int(self.model.config.projection_dim)
        self.token_dim = int(self.model.config.hidden_size)
        self.model.eval()

    @torch.inference_mode()
    def encode(self, texts: list[str], with_tokens: bool = False) -> TextFeatures:
        sentences, tokens = [], []
        for i in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(list(texts[i : i + self.batch_size]), padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt")
            out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            sentences.append(F.normalize(out.text_embeds, dim=-1))
            if with_tokens:
                tokens += split_tokens(out.last_hidden_state, batch["attention_mask"])
        sentence = torch.cat(sentences).numpy().astype(np.float32) if sentences else np.zeros((0, self.dim), np.float32)
        return TextFeatures(sentence=sentence, tokens=tokens)


def build_audio(random_init: bool = False, weights: str | None = None, hop_s: float = 10.0) -> ClapAudioExpert:
    return ClapAudioExpert(random_init=random_init, weights=weights, hop_s=hop_s)


def build_text(random_init: bool = False, weights: str | None = None) -> ClapTextExpert:
    return ClapTextExpert(random_init=random_init, weights=weights)
