"""aisfx: the sound-effects CNN of Ma & Lerch (ISMIR 2022), shipped inside the ``aisfx`` wheel.

Input, as the package documents it (``aisfx.inference`` with its Essentia front end):
44.1 kHz mono, 2048-sample Hann frames every 1024 samples (frames centred on the samples, zero
padded at the edges), power spectrum -> 96 HTK-mel bands (0–22050 Hz, triangles in the mel domain,
each band's weights summing to 1) -> ``log10(1e4 * x + 1)`` -> divided by 9.4578 (the paper's
cross-dataset maximum).  The CNN embeds blocks of 100 frames (~2.32 s).  Output: 512-d per block.

Blocks follow each other without overlap by default (``block_hop=1.0``).  The package's own
default is half a block; on ESC-50 fold 1 that doubles the CNN's work for no measurable gain in
query-by-example (P@1 0.761 vs 0.751, P@5 0.468 vs 0.469; docs/benchmarks.md), so soundseek
keeps it as an option (``block_hop=0.5``) rather than the default.

The package's checkpoint is a pickled (state_dict, dataset_dict) tuple holding numpy scalars; it
is loaded with ``torch.load(weights_only=True)`` and an allow-list of exactly those numpy types,
so no arbitrary code can run.  The package is installed with ``pip install --no-deps aisfx``
because its wheel pins ancient numpy/librosa; only its network definition is imported.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from .base import AudioExpert, AudioFeatures
from .registry import register

SAMPLE_RATE = 44100
N_FFT = 2048
HOP = 1024
N_MELS = 96
F_MIN, F_MAX = 0.0, 22050.0
BLOCK_FRAMES = 100
SPEC_MAX = 9.457798957824707  # aisfx.preprocessing.spectrogram_normalize, spec_norm="original"


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=4)
def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS,
                   f_min: float = F_MIN, f_max: float = F_MAX) -> np.ndarray:
    """(n_mels, n_fft//2+1) HTK-mel triangles built in the mel domain, unit-sum per band."""
    n_bins = n_fft // 2 + 1
    bin_mel = _hz_to_mel(np.arange(n_bins) * sr / n_fft)
    edges = np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2)
    fb = np.zeros((n_mels, n_bins), dtype=np.float64)
    for b in range(n_mels):
        lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
        up = (bin_mel - lo) / (mid - lo)
        down = (hi - bin_mel) / (hi - mid)
        fb[b] = np.clip(np.minimum(up, down), 0.0, None)
        s = fb[b].sum()
        if s > 0:
            fb[b] /= s
    return fb.astype(np.float32)


@lru_cache(maxsize=1)
def _torch_constants():
    import torch

    return torch.hann_window(N_FFT, periodic=False), torch.from_numpy(mel_filterbank())


def log_mel(wave: np.ndarray) -> np.ndarray:
    """(n_frames, 96) normalised log-mel spectrogram of a 44.1 kHz mono waveform."""
    import torch

    wave = np.asarray(wave, dtype=np.float32)
    # Essentia's FrameCutter emits frames while a frame starts before the end of the signal,
    # one more than torch.stft on the raw length: pad to a whole number of hops to match it.
    n_pad = -len(wave) % HOP
    x = torch.from_numpy(np.concatenate([wave, np.zeros(n_pad, np.float32)]) if n_pad else wave.copy())
    window, fb = _torch_constants()
    spec = torch.stft(x, N_FFT, HOP, window=window, center=True, pad_mode="constant",
                      return_complex=True)  # (bins, frames)
    power = torch.view_as_real(spec).square().sum(-1)
    mel = fb @ power
    out = torch.log10(mel * 1e4 + 1.0) / SPEC_MAX
    return out.T.contiguous().numpy()


def blocks(spec: np.ndarray, block: int = BLOCK_FRAMES, hop: int = BLOCK_FRAMES // 2) -> np.ndarray:
    """Cut (frames, mels) into (n_blocks, block, mels); the last block is zero padded.

    Unlike the package's default we keep the partial last block, so the tail of a sound is
    never dropped from the index.
    """
    n = len(spec)
    n_blocks = max(1, int(np.ceil((n - block) / hop)) + 1) if n > block else 1
    padded = np.zeros((hop * (n_blocks - 1) + block, spec.shape[1]), dtype=np.float32)
    padded[:n] = spec
    idx = np.arange(n_blocks)[:, None] * hop + np.arange(block)[None, :]
    return padded[idx]


def checkpoint_path() -> Path:
    """The checkpoint file inside the installed ``aisfx`` package (never imported as code)."""
    import importlib.util

    spec = importlib.util.find_spec("aisfx")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the aisfx expert needs the 'aisfx' package: pip install --no-deps aisfx "
            "(--no-deps: its wheel pins ancient numpy/librosa that soundseek does not need)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "checkpoint.pth"
    if not path.is_file():
        raise RuntimeError(f"aisfx checkpoint missing at {path}; reinstall: pip install --no-deps --force-reinstall aisfx")
    return path


def load_checkpoint(path: str | os.PathLike | None = None):
    """The package checkpoint as saved: ``(state_dict, datasets)``, loaded safely
    (``weights_only=True`` with an allow-list of numpy data types only)."""
    import torch

    from .weights import numpy_data_globals

    with torch.serialization.safe_globals(numpy_data_globals()):
        return torch.load(str(path or checkpoint_path()), map_location="cpu", weights_only=True)


def load_state_dict(path: str | os.PathLike | None = None) -> dict:
    """The embedding network's weights from the package checkpoint."""
    obj = load_checkpoint(path)
    state = obj[0] if isinstance(obj, (tuple, list)) else obj
    prefix = "embedding_net."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _fold_batchnorm(net):
    """Fold each BatchNorm into the convolution before it (inference only): same outputs,
    fewer passes over memory.  With bf16 and channels-last this is ~1.5x faster on CPU."""
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for block in (net.conv_block1, net.conv_block2, net.conv_block3, net.conv_block4):
        block.conv1, block.bn1 = fuse_conv_bn_eval(block.conv1, block.bn1), torch.nn.Identity()
        block.conv2, block.bn2 = fuse_conv_bn_eval(block.conv2, block.bn2), torch.nn.Identity()
    return net


def native_bf16() -> bool:
    """bf16 autocast only pays off where the CPU has bf16 instructions (AVX512-BF16 / AMX)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


class AisfxExpert(AudioExpert):
    name = "aisfx"
    version = "2"  # 2: blocks do not overlap by default (1: half-block hop)
    sample_rate = SAMPLE_RATE
    dim = 512
    window_s = BLOCK_FRAMES * HOP / SAMPLE_RATE

    def __init__(self, block_hop: float = 1.0, batch_blocks: int = 64, threads: int | None = None,
                 precision: str = "auto", random_init: bool = False):
        import torch
        from aisfx.models.cnn2d import EmbeddingNet

        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError("precision must be 'auto', 'fp32' or 'bf16'")
        if precision == "auto":
            precision = "bf16" if native_bf16() else "fp32"
        if not 0 < block_hop <= 1:
            raise ValueError("block_hop is a fraction of the 100-frame block, in (0, 1]")
        self.hop_blocks = max(1, int(round(BLOCK_FRAMES * block_hop)))
        self.hop_s = self.hop_blocks * HOP / SAMPLE_RATE
        self.batch_blocks = batch_blocks
        self.precision = precision
        if threads:
            torch.set_num_threads(threads)
        net = EmbeddingNet("max", 3, 1, 64)
        if not random_init:
            net.load_state_dict(load_state_dict(checkpoint_path()))
        self._dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self.net = _fold_batchnorm(net.eval()).to(self._dtype).to(memory_format=torch.channels_last)
        # A non-default hop gives different features: keep them apart in the store.  bf16 and
        # fp32 share a version: their frames agree to cosine > 0.9998 (tests/test_experts_builtin.py).
        if self.hop_blocks != BLOCK_FRAMES or random_init:
            self.version = f"2-h{self.hop_blocks}{'-random' if random_init else ''}"

    def forward_blocks(self, x):
        """(B, 100, 96) log-mel blocks -> (B, 512) float32 frames through the folded network;
        public so that tests can compare it with the package's own ``EmbeddingNet``."""
        import torch

        with torch.inference_mode():
            return self.net(x.to(self._dtype)).float()

    def embed(self, waves: list[np.ndarray]) -> list[AudioFeatures]:
        import torch

        per_file = [blocks(log_mel(w), hop=self.hop_blocks) for w in waves]
        counts = [len(b) for b in per_file]
        allb = np.concatenate(per_file) if per_file else np.zeros((0, BLOCK_FRAMES, N_MELS), np.float32)
        outs = []
        for i in range(0, len(allb), self.batch_blocks):
            outs.append(self.forward_blocks(torch.from_numpy(allb[i : i + self.batch_blocks])).numpy())
        emb = np.concatenate(outs) if outs else np.zeros((0, self.dim), np.float32)
        result, pos = [], 0
        for c in counts:
            frames = emb[pos : pos + c].astype(np.float32)
            pos += c
            result.append(AudioFeatures(frames=frames, pooled=frames.mean(axis=0), hop_s=self.hop_s,
                                        window_s=self.window_s, offset_s=-HOP / SAMPLE_RATE))
        return result


@register("aisfx", "audio", "sound-effects CNN (Ma & Lerch 2022), 512-d per 2.3 s block, 44.1 kHz",
          offline=True, dim=512)
def _make(**kwargs) -> AisfxExpert:
    return AisfxExpert(**kwargs)
