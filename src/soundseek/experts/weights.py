"""Where the zoo experts' pretrained weights come from, and how they are fetched and checked.

Every zoo expert has one :class:`~.zoo.WeightSource` (rows in :mod:`.zoo`) naming the published file (a URL or a Hugging Face
repo), its size and checksum where the publisher gives one.  Files live in the cache

    $SOUNDSEEK_CACHE/weights/<expert>/<filename>      (default ~/.cache/soundseek)
    $SOUNDSEEK_CACHE/hf/                              (Hugging Face snapshots)

A user who cannot download at run time copies the file there (what the CLI reads), or passes
``weights=PATH`` from Python; ``soundseek models verify NAME --weights PATH`` checks a file first.  Downloads go to a temporary file and are renamed into place
only after the checksum matched, so a half-written file is never used.  Checkpoints are read with
safetensors or ``torch.load(weights_only=True)`` only: no pickled code is ever executed.

Set ``SOUNDSEEK_OFFLINE=1`` to never touch the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from pathlib import Path

from .zoo import WEIGHTS, ZOO, WeightSource, ZooInfo

__all__ = [
    "WEIGHTS",
    "ZOO",
    "ZooInfo",
    "get_source",
    "load_into",
    "WeightSource",
    "WeightsError",
    "cache_dir",
    "default_path",
    "download",
    "file_digest",
    "is_offline",
    "load_state_dict",
    "numpy_data_globals",
    "resolve",
    "resolve_hf",
    "status",
    "verify",
]


class WeightsError(RuntimeError):
    """A weight file is missing, unreachable or corrupt; the message says how to fix it."""


def is_offline() -> bool:
    """True when the user asked for no network with ``SOUNDSEEK_OFFLINE=1``.

    (``HF_HUB_OFFLINE`` is not consulted here; the hub client itself still honours it for
    Hugging Face downloads.)
    """
    return os.environ.get("SOUNDSEEK_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def cache_dir() -> Path:
    """Root of the soundseek cache: ``$SOUNDSEEK_CACHE`` or ``~/.cache/soundseek``."""
    env = os.environ.get("SOUNDSEEK_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "soundseek"


def get_source(expert: str) -> WeightSource:
    try:
        return WEIGHTS[expert]
    except KeyError:
        raise KeyError(
            f"no published weights are registered for {expert!r}; known: {', '.join(sorted(WEIGHTS))}"
        ) from None


def default_path(expert: str) -> Path:
    """Where the cache keeps a single-file checkpoint (URL sources)."""
    src = get_source(expert)
    return cache_dir() / "weights" / src.expert / src.filename


def hf_cache_dir() -> Path:
    return cache_dir() / "hf"


def file_digest(path: Path, algo: str = "sha256") -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def _where_to_put(src: WeightSource) -> str:
    return (
        f"Download {src.url} on a machine with network access and copy it to {default_path(src.expert)} "
        f"(the CLI reads it there; from Python you may pass weights=PATH instead; "
        f"`soundseek models verify {src.expert} --weights PATH` checks a file's checksum)."
    )


def verify(expert: str, path: Path | None = None) -> dict:
    """Check a checkpoint against the published checksum; returns what was checked.

    Without a published checksum the digest recorded on first download is used; without that
    either, the digest is recorded now (trust on first use) and ``checked`` is ``"recorded"``.
    Raises :class:`WeightsError` on a mismatch.
    """
    src = get_source(expert)
    if src.hf_repo:
        raise WeightsError(f"{expert!r} comes from the Hugging Face hub ({src.source}); the hub verifies it")
    path = Path(path) if path is not None else default_path(expert)
    if not path.is_file():
        raise WeightsError(f"weights for {expert!r} not found: {path}. {_where_to_put(src)}")
    sha = file_digest(path, "sha256")
    result = {"expert": expert, "path": str(path), "sha256": sha, "size_bytes": path.stat().st_size}
    problems = []
    if src.sha256 and not sha.startswith(src.sha256.lower()):
        problems.append(f"sha256 {sha} does not match the published {src.sha256}")
    if src.md5:
        md5 = file_digest(path, "md5")
        result["md5"] = md5
        if md5 != src.md5.lower():
            problems.append(f"md5 {md5} does not match the published {src.md5}")
    record = _record_path(path)
    if not src.sha256 and not src.md5:
        if record.is_file():
            known = json.loads(record.read_text())["sha256"]
            if known != sha:
                problems.append(f"sha256 {sha} differs from the one recorded at first download ({known})")
            result["checked"] = "recorded"
        else:
            result["checked"] = "first-use"
    else:
        result["checked"] = "published"
    if problems:
        raise WeightsError(
            f"checksum mismatch for {expert!r} weights {path} ({'; '.join(problems)}). The file is corrupt "
            f"or not the published one: delete it and download {src.url} again. {_where_to_put(src)}"
        )
    if path == default_path(expert):  # only the cached copy gets a record
        record.write_text(json.dumps({"sha256": sha, "size_bytes": result["size_bytes"], "mtime": path.stat().st_mtime}))
    return result


def _verified_before(path: Path) -> bool:
    """Skip re-hashing large files whose size and mtime match the last successful check."""
    record = _record_path(path)
    if not record.is_file():
        return False
    try:
        data = json.loads(record.read_text())
        st = path.stat()
        return data.get("size_bytes") == st.st_size and abs(data.get("mtime", -1) - st.st_mtime) < 1e-3
    except (OSError, ValueError):
        return False


def download(expert: str, force: bool = False, progress: bool = True, timeout_s: float = 15.0) -> Path:
    """Fetch the published checkpoint into the cache (atomically) and verify it."""
    src = get_source(expert)
    if src.hf_repo:
        return resolve_hf(expert, allow_download=True)
    dest = default_path(expert)
    if dest.is_file() and not force:
        verify(expert, dest)
        return dest
    if is_offline():
        raise WeightsError(
            f"weights for {expert!r} are not in the cache ({dest}) and SOUNDSEEK_OFFLINE is set. {_where_to_put(src)}"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + f".part{os.getpid()}")
    try:
        req = urllib.request.Request(str(src.url), headers={"User-Agent": "soundseek"})
        with urllib.request.urlopen(req, timeout=timeout_s) as resp, open(tmp, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or src.size_bytes
            _copy_with_progress(resp, out, total, f"{expert}: {src.filename}", progress)
    except OSError as e:  # URLError, timeouts, disk errors
        tmp.unlink(missing_ok=True)
        raise WeightsError(f"could not download weights for {expert!r} from {src.url}: {e}. {_where_to_put(src)}") from e
    try:
        verify(expert, tmp)
    except WeightsError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, dest)
    verify(expert, dest)  # writes the record next to the final name
    return dest


def _copy_with_progress(resp, out, total: int | None, label: str, progress: bool) -> None:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        disable=not progress, transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        for block in iter(lambda: resp.read(1 << 20), b""):
            out.write(block)
            bar.advance(task, len(block))


def resolve(expert: str, weights: str | os.PathLike | None = None, allow_download: bool = True) -> Path:
    """Path of a verified checkpoint: ``weights`` if given, else the cache, else a download."""
    src = get_source(expert)
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights file for {expert!r} not found: {path}. {_where_to_put(src)}")
        if src.sha256 or src.md5:
            verify(expert, path)
        return path
    dest = default_path(expert)
    if dest.is_file():
        if not _verified_before(dest):
            verify(expert, dest)
        return dest
    if not allow_download or is_offline():
        raise WeightsError(f"weights for {expert!r} not found: {dest}. {_where_to_put(src)}")
    return download(expert)


def resolve_hf(expert: str, local_dir: str | os.PathLike | None = None, allow_download: bool = True) -> str:
    """Directory holding a Hugging Face snapshot: ``local_dir``, the cache, or a download."""
    src = get_source(expert)
    if local_dir is not None:
        path = Path(local_dir).expanduser()
        if not (path / "config.json").is_file():
            raise WeightsError(
                f"{path} is not a Hugging Face model directory (no config.json) for {expert!r}; "
                f"expected a local copy of {src.source}"
            )
        return str(path)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    kwargs = dict(repo_id=src.hf_repo, revision=src.hf_revision, cache_dir=str(hf_cache_dir()),
                  allow_patterns=list(src.hf_files) or None)
    try:
        return snapshot_download(local_files_only=True, **kwargs)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        pass
    hint = (
        # `hf` is huggingface_hub's CLI (`huggingface-cli` is gone from its recent releases)
        f"On a machine with network access run `hf download {src.hf_repo} --revision {src.hf_revision}"
        f" --cache-dir {hf_cache_dir()}` and copy {hf_cache_dir()} over (the CLI reads it there), or from Python pass "
        "weights=DIR "
        f"pointing to a local copy of https://huggingface.co/{src.hf_repo}."
    )
    if not allow_download or is_offline():
        raise WeightsError(f"{expert!r}: {src.hf_repo} is not in the cache {hf_cache_dir()}. {hint}")
    try:
        return snapshot_download(**kwargs)
    except Exception as e:  # hub raises many types (connection, auth, missing revision)
        raise WeightsError(f"could not download {src.hf_repo} for {expert!r}: {e}. {hint}") from e


def status(expert: str) -> str:
    """``cached`` or ``not downloaded`` (without network access)."""
    src = get_source(expert)
    if src.hf_repo:
        try:
            resolve_hf(expert, allow_download=False)
            return "cached"
        except WeightsError:
            return "not downloaded"
    return "cached" if default_path(expert).is_file() else "not downloaded"


def numpy_data_globals() -> list:
    """Numpy array/scalar/dtype reconstructors: they rebuild data, never run user code.

    Listed under both the NumPy 1 (``numpy.core``) and NumPy 2 (``numpy._core``) names that
    checkpoints pickled with either version refer to.
    """
    import numpy as np

    try:
        from numpy._core import multiarray  # NumPy 2
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray

    items: list = [np.ndarray, np.dtype]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        items += [(multiarray._reconstruct, f"{mod}._reconstruct"), (multiarray.scalar, f"{mod}.scalar")]
    items += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    return items


def load_state_dict(path: str | os.PathLike, key: str | None = None) -> dict:
    """Tensors from a safetensors file or a plain torch checkpoint (never unpickles code).

    ``key`` picks a nested dict (PANNs checkpoints keep the weights under ``"model"``).
    """
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # e.g. PANNs files also hold their sampler's numpy arrays
            try:
                with torch.serialization.safe_globals(numpy_data_globals()):
                    state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # UnpicklingError for files that need arbitrary code
                raise WeightsError(
                    f"{path} is not a plain tensor checkpoint (weights_only load failed: {e})"
                ) from e
    if key is not None and isinstance(state, dict) and key in state:
        state = state[key]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} does not hold a state dict")
    return state


def load_into(module, state: dict, expert: str, ignore_prefixes: tuple[str, ...] = ()) -> None:
    """Load ``state`` into ``module`` strictly, except for keys we deliberately do not use.

    Published checkpoints carry extras (front-end buffers, classifier heads we drop); those are
    listed in ``ignore_prefixes``.  Anything else missing or unexpected means the wrong file.
    """
    state = {k: v for k, v in state.items() if not k.startswith(ignore_prefixes)}
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad_shape = [k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or bad_shape:
        raise WeightsError(
            f"the checkpoint does not fit the {expert!r} architecture: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, wrong shape {sorted(bad_shape)[:5]}"
        )
    module.load_state_dict(state, strict=True)
