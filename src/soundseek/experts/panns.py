"""PANNs audio experts: CNN14 and ResNet38 (Kong et al., 2020), as used for retrieval by Mei et al.

Front end (as published): 32 kHz mono, |STFT|^2 with a 1024-sample periodic Hann window, hop 320
(100 frames/s, centred, reflect padding), 64 Slaney mel bands 50-14000 Hz, 10*log10, then a
BatchNorm over mel bands.  The CNN halves time and frequency five times (/32), so one output frame
every 0.32 s.  Frame features are the last conv map averaged over frequency (T x 2048); the clip
vector is max-over-time + mean-over-time of those frames, as in Mei et al. (2022).

Module names follow the published checkpoints (``bn0``, ``conv_block1.conv1``, ``resnet.layer1.0``
...), so ``Cnn14_mAP=0.431.pth`` / ``ResNet38_mAP=0.434.pth`` load strictly (the classifier and the
torchlibrosa front-end buffers in the file are ignored: we compute the front end ourselves).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import AudioExpert, AudioFeatures, weights_tag
from .weights import load_into, load_state_dict, resolve

__all__ = ["PannsConfig", "PannsExpert", "Cnn14", "ResNet38", "slaney_mel_filterbank", "receptive_field"]


@dataclass(frozen=True)
class PannsConfig:
    arch: str = "cnn14"  # "cnn14" | "resnet38"
    sample_rate: int = 32000
    n_fft: int = 1024
    hop: int = 320
    n_mels: int = 64
    fmin: float = 50.0
    fmax: float = 14000.0
    dim: int = 2048
    time_downsample: int = 32


# ---------------------------------------------------------------------------------------------
# front end


def _hz_to_mel_slaney(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
    return np.where(f < min_log_hz, f / f_sp, min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep)


def _mel_to_hz_slaney(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m < min_log_mel, m * f_sp, min_log_hz * np.exp(logstep * (m - min_log_mel)))


def slaney_mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_fft//2+1, n_mels) triangular filters on the Slaney mel scale, area-normalised.

    The same filters librosa's default ``filters.mel`` builds, which PANNs were trained with.
    """
    fft_hz = np.linspace(0.0, sr / 2, n_fft // 2 + 1)
    mel_pts = np.linspace(_hz_to_mel_slaney(fmin), _hz_to_mel_slaney(fmax), n_mels + 2)
    hz_pts = _mel_to_hz_slaney(mel_pts)
    widths = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (hz_pts[2:] - hz_pts[:-2]))[:, None]
    return weights.T.astype(np.float32)


class LogMel(nn.Module):
    """Waveform (B, N) -> log-mel (B, 1, T, n_mels) with T = 1 + N // hop."""

    def __init__(self, cfg: PannsConfig):
        super().__init__()
        self.n_fft, self.hop = cfg.n_fft, cfg.hop
        self.register_buffer("window", torch.hann_window(cfg.n_fft, periodic=True), persistent=False)
        mel = slaney_mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
        self.register_buffer("mel", torch.from_numpy(mel), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wave, self.n_fft, self.hop, window=self.window, center=True, pad_mode="reflect",
                          return_complex=True)
        power = spec.real.pow(2) + spec.imag.pow(2)  # (B, F, T)
        mel = power.transpose(1, 2) @ self.mel  # (B, T, M)
        return (10.0 * torch.log10(mel.clamp_min(1e-10))).unsqueeze(1)


# ---------------------------------------------------------------------------------------------
# networks


class ConvBlock(nn.Module):
    """Two 3x3 conv + BN + ReLU, then average pooling (the PANNs building block)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: int = 2) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool) if pool > 1 else x


class _Backbone(nn.Module):
    """Shared input normalisation and pooling; subclasses define ``trunk``."""

    def __init__(self, cfg: PannsConfig):
        super().__init__()
        self.logmel = LogMel(cfg)
        self.bn0 = nn.BatchNorm2d(cfg.n_mels)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveform (B, N) -> frame features (B, T', D), T' = (1 + N // hop) // 32."""
        x = self.logmel(wave)  # (B, 1, T, M)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        x = self.trunk(x)  # (B, D, T', M')
        return x.mean(dim=3).transpose(1, 2)


class Cnn14(_Backbone):
    def __init__(self, cfg: PannsConfig = PannsConfig()):
        super().__init__(cfg)
        widths = [1, 64, 128, 256, 512, 1024, 2048]
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", ConvBlock(widths[i], widths[i + 1]))

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 7):
            x = getattr(self, f"conv_block{i}")(x, pool=2 if i < 6 else 1)
        return x


class BasicBlock(nn.Module):
    """ResNet basic block; PANNs downsample with 2x2 average pooling before the first conv."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride == 2:
            self.downsample = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        elif cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.avg_pool2d(x, 2) if self.stride == 2 else x
        out = F.relu(self.bn1(self.conv1(out)))
        out = self.bn2(self.conv2(out))
        identity = self.downsample(x) if self.downsample is not None else x
        return F.relu(out + identity)


class _ResNetLayers(nn.Module):
    def __init__(self, blocks: tuple[int, ...] = (3, 4, 6, 3)):
        super().__init__()
        cin = 64
        for i, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512))):
            stride = 1 if i == 0 else 2
            layer = [BasicBlock(cin, width, stride)] + [BasicBlock(width, width, 1) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
            cin = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class ResNet38(_Backbone):
    def __init__(self, cfg: PannsConfig = PannsConfig(arch="resnet38")):
        super().__init__(cfg)
        self.conv_block1 = ConvBlock(1, 64)
        self.resnet = _ResNetLayers()
        self.conv_block_after1 = ConvBlock(512, 2048)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_block1(x, pool=2)
        x = F.avg_pool2d(self.resnet(x), 2)
        return self.conv_block_after1(x, pool=1)


def receptive_field(ops: list[tuple[str, int]]) -> int:
    """Receptive field (input frames) of a chain of ('conv', kernel) / ('pool', stride) ops."""
    rf, jump = 1, 1
    for kind, k in ops:
        rf += (k - 1) * jump
        if kind == "pool":
            jump *= k
    return rf


_CNN14_OPS = [op for i in range(6) for op in ([("conv", 3), ("conv", 3)] + ([("pool", 2)] if i < 5 else []))]
_RESNET38_OPS = (
    [("conv", 3), ("conv", 3), ("pool", 2)]
    + [("conv", 3)] * 6
    + [op for n in (4, 6, 3) for op in [("pool", 2)] + [("conv", 3)] * (2 * n)]
    + [("pool", 2), ("conv", 3), ("conv", 3)]
)


# ---------------------------------------------------------------------------------------------
# expert


class PannsExpert(AudioExpert):
    """CNN14 / ResNet38 frame features (2048-d every 0.32 s), clip vector = max + mean over time."""

    version = "1"

    def __init__(self, cfg: PannsConfig, random_init: bool = False, weights: str | None = None, seed: int = 0):
        self.cfg = cfg
        self.name = f"panns-{cfg.arch}"
        self.sample_rate = cfg.sample_rate
        self.dim = cfg.dim
        self.hop_s = cfg.hop * cfg.time_downsample / cfg.sample_rate
        ops = _CNN14_OPS if cfg.arch == "cnn14" else _RESNET38_OPS
        self.window_s = ((receptive_field(ops) - 1) * cfg.hop + cfg.n_fft) / cfg.sample_rate
        torch.manual_seed(seed)
        self.model = (Cnn14 if cfg.arch == "cnn14" else ResNet38)(cfg).eval()
        self.random_init = random_init
        if not random_init:
            path = resolve(self.name, weights)
            state = load_state_dict(path, key="model")
            load_into(self.model, state, self.name,
                      ignore_prefixes=("spectrogram_extractor.", "logmel_extractor.", "fc1.", "fc_audioset."))
            self.weights_path = str(path)
            self.tag_version(w=weights_tag(weights))
        if random_init:
            self.version = f"random-s{seed}"

    @property
    def min_samples(self) -> int:
        return self.cfg.hop * self.cfg.time_downsample

    @torch.inference_mode()
    def embed(self, waves: list[np.ndarray]) -> list[AudioFeatures]:
        out = []
        for wave in waves:  # one clip at a time: no padding leaks into max pooling
            w = np.asarray(wave, dtype=np.float32).reshape(-1)
            if len(w) < self.min_samples:
                w = np.pad(w, (0, self.min_samples - len(w)))
            frames = self.model(torch.from_numpy(w)[None])[0]  # (T', D)
            pooled = frames.max(dim=0).values + frames.mean(dim=0)
            out.append(AudioFeatures(frames.numpy().astype(np.float32), pooled.numpy().astype(np.float32),
                                     hop_s=self.hop_s, window_s=self.window_s, offset_s=0.0))
        return out


def build_cnn14(random_init: bool = False, weights: str | None = None) -> PannsExpert:
    return PannsExpert(PannsConfig(arch="cnn14"), random_init=random_init, weights=weights)


def build_resnet38(random_init: bool = False, weights: str | None = None) -> PannsExpert:
    return PannsExpert(PannsConfig(arch="resnet38"), random_init=random_init, weights=weights)
