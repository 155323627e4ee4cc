"""logmel: a cheap, training-free second audio view — log-mel statistics per window.

Multi-expert models (MoEE, CE, MMT) need more than one audio expert; this one needs no weights.
Each frame summarises ~1 s of audio (hop 0.5 s) by the mean and standard deviation of a
64-band log-mel spectrogram (16 kHz, 25 ms windows, 10 ms hop): 128-d.
"""

from __future__ import annotations

import numpy as np

from .base import AudioExpert, AudioFeatures
from .registry import register


class LogMelStatsExpert(AudioExpert):
    name = "logmel"
    version = "1"
    sample_rate = 16000
    dim = 128
    n_mels = 64

    def __init__(self, window_s: float = 1.0, hop_s: float = 0.5):
        self.window_s = window_s
        self.hop_s = hop_s
        self._fb = None

    def _spectrogram(self, wave: np.ndarray) -> np.ndarray:
        import torch

        n_fft, hop = 400, 160
        if self._fb is None:
            from .aisfx import mel_filterbank

            fb = mel_filterbank(self.sample_rate, 512, self.n_mels, 50.0, 8000.0)
            self._fb = torch.from_numpy(fb)
        x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
        if len(x) < n_fft:
            x = torch.nn.functional.pad(x, (0, n_fft - len(x)))
        spec = torch.stft(x, 512, hop, win_length=n_fft, window=torch.hann_window(n_fft), center=True,
                          return_complex=True)
        power = spec.real.square() + spec.imag.square()
        return torch.log(self._fb @ power + 1e-6).T.numpy()  # (frames, mels), 100 frames/s

    def embed(self, waves: list[np.ndarray]) -> list[AudioFeatures]:
        out = []
        per_s = self.sample_rate / 160
        win, hop = max(1, int(round(self.window_s * per_s))), max(1, int(round(self.hop_s * per_s)))
        for w in waves:
            spec = self._spectrogram(w)
            n = len(spec)
            starts = list(range(0, max(1, n - win + 1), hop))
            if starts[-1] + win < n:
                starts.append(starts[-1] + hop)
            frames = np.stack(
                [np.concatenate([spec[s : s + win].mean(0), spec[s : s + win].std(0)]) for s in starts]
            ).astype(np.float32)
            out.append(AudioFeatures(frames, frames.mean(0), self.hop_s, self.window_s, 0.0))
        return out


@register("logmel", "audio", "log-mel statistics (mean+std of 64 bands per 1 s window), 128-d, no weights",
          offline=True, dim=128)
def _make(**kwargs) -> LogMelStatsExpert:
    return LogMelStatsExpert(**kwargs)
