"""The identity of a model's weights: a short digest of its ``state_dict``.

An index stores it to notice a retrained model; an evaluation records it so that a result names
the exact weights it measured.  Torch-free at import (the model brings torch)."""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["weights_fingerprint"]


def weights_fingerprint(model: Any, salt: str = "") -> str:
    """BLAKE2b-128 (hex) of ``salt`` then every tensor of ``model.state_dict()`` by name, as float32.

    ``salt`` (e.g. the model spec) is hashed first; a model without ``state_dict`` or without
    tensors (``native:`` specs) hashes the salt alone."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str(salt).encode())
    state = model.state_dict() if hasattr(model, "state_dict") else {}
    for name, tensor in sorted(state.items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()
