"""VGGish (Hershey et al., 2017): one 128-d vector per non-overlapping 0.96 s of 16 kHz audio.

Front end as in the reference ``vggish_input`` / torchvggish: 25 ms periodic-Hann frames every
10 ms (no padding), |rfft| with 512 points, 64 HTK-mel bands 125-7500 Hz (DC bin dropped),
``log(mel + 0.01)``, then 96-frame examples with hop 96.  Layer names follow the torchvggish port
(``features.0`` ... ``embeddings.4``) so its checkpoint loads strictly.  The PCA/quantisation
post-processing of the TF release is not applied: the raw 128-d embeddings are returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .base import AudioExpert, AudioFeatures, weights_tag
from .weights import load_into, load_state_dict, resolve

__all__ = ["VGGishConfig", "VGGish", "VGGishExpert", "vggish_log_mel", "htk_mel_matrix"]


@dataclass(frozen=True)
class VGGishConfig:
    sample_rate: int = 16000
    win: int = 400  # 25 ms
    hop: int = 160  # 10 ms
    n_fft: int = 512
    n_mels: int = 64
    fmin: float = 125.0
    fmax: float = 7500.0
    log_offset: float = 0.01
    example_frames: int = 96  # 0.96 s
    dim: int = 128


def _hz_to_mel_htk(f):
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


def htk_mel_matrix(cfg: VGGishConfig = VGGishConfig()) -> np.ndarray:
    """(n_fft//2+1, n_mels) triangles evaluated on the mel axis, DC row zeroed (VGGish recipe)."""
    bins_mel = _hz_to_mel_htk(np.linspace(0.0, cfg.sample_rate / 2, cfg.n_fft // 2 + 1))
    edges = np.linspace(_hz_to_mel_htk(cfg.fmin), _hz_to_mel_htk(cfg.fmax), cfg.n_mels + 2)
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lo) / (mid - lo)
    falling = (hi - bins_mel[:, None]) / (hi - mid)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights.astype(np.float32)


def vggish_log_mel(wave: np.ndarray, cfg: VGGishConfig = VGGishConfig()) -> np.ndarray:
    """Mono 16 kHz waveform -> (n_examples, 96, 64) log-mel examples (at least one, zero-padded)."""
    need = cfg.win + (cfg.example_frames - 1) * cfg.hop
    w = np.asarray(wave, dtype=np.float32).reshape(-1)
    if len(w) < need:
        w = np.pad(w, (0, need - len(w)))
    n_frames = 1 + (len(w) - cfg.win) // cfg.hop
    idx = np.arange(cfg.win)[None, :] + cfg.hop * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(cfg.win) / cfg.win)  # periodic Hann
    mag = np.abs(np.fft.rfft(w[idx] * window, cfg.n_fft))
    log_mel = np.log(mag @ htk_mel_matrix(cfg) + cfg.log_offset).astype(np.float32)
    n_ex = n_frames // cfg.example_frames
    return log_mel[: n_ex * cfg.example_frames].reshape(n_ex, cfg.example_frames, cfg.n_mels)


class VGGish(nn.Module):
    """VGG-A style conv stack over a 96x64 patch + three fully connected layers -> 128-d."""

    def __init__(self, cfg: VGGishConfig = VGGishConfig()):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for spec in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
            if spec == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(spec), 3, padding=1), nn.ReLU(inplace=True)]
                cin = int(spec)
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, cfg.dim), nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 96, 64) log-mel examples -> (B, 128)."""
        x = self.features(x.unsqueeze(1))  # (B, 512, 6, 4)
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # TF flattening order: time, freq, channel
        return self.embeddings(x)


class VGGishExpert(AudioExpert):
    name = "vggish"
    version = "1"
    sample_rate = 16000
    dim = 128
    hop_s = 0.96
    window_s = 0.975  # 96 hops of 10 ms + one 25 ms window

    def __init__(self, random_init: bool = False, weights: str | None = None, seed: int = 0, batch_size: int = 32):
        self.cfg = VGGishConfig()
        torch.manual_seed(seed)
        self.model = VGGish(self.cfg).eval()
        self.batch_size = batch_size
        if random_init:
            self.version = f"random-s{seed}"
        else:
            path = resolve(self.name, weights)
            load_into(self.model, load_state_dict(path), self.name)
            self.weights_path = str(path)
            self.tag_version(w=weights_tag(weights))

    @torch.inference_mode()
    def embed(self, waves: list[np.ndarray]) -> list[AudioFeatures]:
        out = []
        for wave in waves:
            ex = torch.from_numpy(vggish_log_mel(wave, self.cfg))
            frames = torch.cat([self.model(b) for b in ex.split(self.batch_size)]).numpy().astype(np.float32)
            out.append(AudioFeatures(frames, frames.mean(axis=0), hop_s=self.hop_s, window_s=self.window_s))
        return out


def build(random_init: bool = False, weights: str | None = None) -> VGGishExpert:
    return VGGishExpert(random_init=random_init, weights=weights)
