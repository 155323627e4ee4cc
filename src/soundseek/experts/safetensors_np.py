"""A numpy reader for safetensors files: memory-mapped, no torch, no safetensors package.

Shared by the torch-free MiniLM (:mod:`.minilm_fast`) and the ONNX graph builder
(:mod:`.minilm_onnx`); a leaf module so that neither imports the other.
"""

from __future__ import annotations

import json
import mmap
import struct
from pathlib import Path

import numpy as np

__all__ = ["read_safetensors"]

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """Read-only numpy views of every tensor in a safetensors file (memory-mapped, no copy;
    BF16 is widened to float32)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    base = 8 + n
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        shape = tuple(info["shape"])
        dt = info["dtype"]
        if dt == "BF16":
            raw = np.frombuffer(mm, np.uint16, (end - start) // 2, base + start)
            out[name] = (raw.astype(np.uint32) << 16).view(np.float32).reshape(shape)
        elif dt in _DTYPES:
            dtype = np.dtype(_DTYPES[dt])
            out[name] = np.frombuffer(mm, dtype, (end - start) // dtype.itemsize, base + start).reshape(shape)
        else:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {dt}")
    return out
