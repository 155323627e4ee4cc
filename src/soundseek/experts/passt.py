"""PaSST-S (Koutini et al., 2022): a ViT over 16x16 log-mel patches (stride 10), AudioSet-trained.

Front end (as published for ``passt-s-f128-p16-s10-ap.476-swa``): 32 kHz, pre-emphasis 0.97,
|STFT|^2 with n_fft 1024, an 800-sample symmetric Hann window and hop 320 (100 frames/s), 128
Kaldi-style mel bands 0-15500 Hz, ``(log(mel + 1e-5) + 4.5) / 5``.  Input is cut into 10-s
snippets (the length the model was trained on, 99 time patches); one embedding per snippet = mean
of the CLS and distillation tokens (768-d), the clip vector = mean over snippets.

We write the network ourselves (parameter names follow the released checkpoint: ``patch_embed.proj``,
``blocks.N.attn.qkv`` ...) rather than depend on ``hear21passt``, which needs torchaudio and timm
and downloads weights from GitHub itself; here weights go through :mod:`.weights`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import AudioExpert, AudioFeatures, weights_tag
from .weights import load_into, load_state_dict, resolve

__all__ = ["PasstConfig", "PaSST", "PasstExpert", "PasstFrontEnd", "kaldi_mel_banks"]


@dataclass(frozen=True)
class PasstConfig:
    sample_rate: int = 32000
    n_fft: int = 1024
    win: int = 800
    hop: int = 320
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float = 15500.0
    patch: int = 16
    stride: int = 10
    max_frames: int = 998  # 10 s of mel frames: 99 time patches
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    snippet_s: float = 10.0


def kaldi_mel_banks(n_mels: int, n_fft: int, sr: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_mels, n_fft//2+1) triangles on the 1127*ln(1+f/700) scale, unnormalised (Kaldi style)."""
    mel = lambda f: 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)  # noqa: E731
    lo, hi = mel(fmin), mel(fmax)
    delta = (hi - lo) / (n_mels + 1)
    left = lo + delta * np.arange(n_mels)[:, None]
    centre, right = left + delta, left + 2 * delta
    bins = mel(sr / n_fft * np.arange(n_fft // 2))[None, :]
    up = (bins - left) / (centre - left)
    down = (right - bins) / (right - centre)
    banks = np.maximum(0.0, np.minimum(up, down))
    return np.pad(banks, ((0, 0), (0, 1))).astype(np.float32)  # Nyquist bin gets no weight


class PasstFrontEnd(nn.Module):
    """Waveform (B, N) -> normalised log-mel (B, 128, 1 + (N - 1) // hop)."""

    def __init__(self, cfg: PasstConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("window", torch.hann_window(cfg.win, periodic=False), persistent=False)
        banks = kaldi_mel_banks(cfg.n_mels, cfg.n_fft, cfg.sample_rate, cfg.fmin, cfg.fmax)
        self.register_buffer("banks", torch.from_numpy(banks), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = wave[:, 1:] - 0.97 * wave[:, :-1]  # pre-emphasis
        spec = torch.stft(x, self.cfg.n_fft, self.cfg.hop, win_length=self.cfg.win, window=self.window,
                          center=True, pad_mode="reflect", return_complex=True)
        power = spec.real.pow(2) + spec.imag.pow(2)
        return ((self.banks @ power + 1e-5).log() + 4.5) / 5.0


class PatchEmbed(nn.Module):
    def __init__(self, cfg: PasstConfig):
        super().__init__()
        self.proj = nn.Conv2d(1, cfg.dim, cfg.patch, stride=cfg.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, cfg: PasstConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.attn = Attention(cfg.dim, cfg.heads)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.mlp = Mlp(cfg.dim, int(cfg.dim * cfg.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PaSST(nn.Module):
    """Inference-only PaSST (no patchout): log-mel (B, 128, T) -> (B, 768) embedding."""

    def __init__(self, cfg: PasstConfig = PasstConfig()):
        super().__init__()
        self.cfg = cfg
        f_grid = (cfg.n_mels - cfg.patch) // cfg.stride + 1
        t_grid = (cfg.max_frames - cfg.patch) // cfg.stride + 1
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.new_pos_embed = nn.Parameter(torch.zeros(1, 2, cfg.dim))
        self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, cfg.dim, f_grid, 1))
        self.time_new_pos_embed = nn.Parameter(torch.zeros(1, cfg.dim, 1, t_grid))
        self.blocks = nn.Sequential(*[Block(cfg) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        for p in (self.cls_token, self.dist_token, self.new_pos_embed, self.freq_new_pos_embed,
                  self.time_new_pos_embed):
            nn.init.trunc_normal_(p, std=0.02)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(mel.unsqueeze(1))  # (B, D, F', T')
        t = x.shape[-1]
        if t > self.time_new_pos_embed.shape[-1]:
            raise ValueError(f"PaSST input too long: {t} time patches > {self.time_new_pos_embed.shape[-1]}")
        x = x + self.time_new_pos_embed[..., :t] + self.freq_new_pos_embed
        x = x.flatten(2).transpose(1, 2)
        b = x.shape[0]
        cls = self.cls_token.expand(b, -1, -1) + self.new_pos_embed[:, :1]
        dist = self.dist_token.expand(b, -1, -1) + self.new_pos_embed[:, 1:]
        x = self.norm(self.blocks(torch.cat([cls, dist, x], dim=1)))
        return (x[:, 0] + x[:, 1]) / 2


class PasstExpert(AudioExpert):
    name = "passt"
    version = "1"
    sample_rate = 32000
    dim = 768

    def __init__(self, random_init: bool = False, weights: str | None = None, seed: int = 0,
                 hop_s: float = 10.0):
        self.cfg = PasstConfig()
        self.window_s = self.cfg.snippet_s
        self.hop_s = float(hop_s)
        torch.manual_seed(seed)
        self.front = PasstFrontEnd(self.cfg)
        self.model = PaSST(self.cfg).eval()
        if random_init:
            self.version = "random"
        else:
            path = resolve(self.name, weights)
            load_into(self.model, load_state_dict(path), self.name, ignore_prefixes=("head.", "head_dist."))
            self.weights_path = str(path)
        self.tag_version(h=None if self.hop_s == 10.0 else f"{self.hop_s:g}", w=weights_tag(weights),
                         s=seed if random_init else None)

    def snippets(self, wave: np.ndarray) -> list[np.ndarray]:
        """10-s pieces every ``hop_s`` (the last may be shorter; at least 0.2 s, zero-padded)."""
        sr = self.sample_rate
        win, hop = int(round(self.window_s * sr)), int(round(self.hop_s * sr))
        min_len = self.cfg.patch * self.cfg.hop + 1
        starts = range(0, max(len(wave) - win, 0) + 1, hop) if len(wave) > win else [0]
        starts = list(starts)
        if len(wave) > win and starts[-1] + win < len(wave):
            starts.append(starts[-1] + hop)
        out = []
        for s in starts:
            piece = wave[s : s + win]
            if len(piece) < min_len:
                piece = np.pad(piece, (0, min_len - len(piece)))
            out.append(piece)
        return out

    @torch.inference_mode()
    def embed(self, waves: list[np.ndarray]) -> list[AudioFeatures]:
        out = []
        for wave in waves:
            w = np.asarray(wave, dtype=np.float32).reshape(-1)
            rows = []
            for piece in self.snippets(w):
                mel = self.front(torch.from_numpy(piece)[None])[..., : self.cfg.max_frames]
                rows.append(self.model(mel)[0])
            frames = torch.stack(rows).numpy().astype(np.float32)
            out.append(AudioFeatures(frames, frames.mean(axis=0), hop_s=self.hop_s, window_s=self.window_s))
        return out


def build(random_init: bool = False, weights: str | None = None, hop_s: float = 10.0) -> PasstExpert:
    return PasstExpert(random_init=random_init, weights=weights, hop_s=hop_s)
