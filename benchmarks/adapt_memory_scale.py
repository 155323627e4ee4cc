"""What the name memory costs for a 10,000-file library (issue 18: "minutes, not hours, for 10k
files on 2 cores"): its check (two held-out questions x 3 splits), building it, and applying it
to one query.  The window vectors are synthetic (random unit vectors in the shipped default
model's space, 3.1 windows per file as in the benchmark libraries) because only their shapes
matter for the time; the text side is the shipped default's (real).

    PYTHONPATH=src python benchmarks/adapt_memory_scale.py [--files 10000] [--names 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from experts import cpu_name  # benchmarks/experts.py


@dataclass
class FakeFile:
    item_id: int
    named: bool


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--names", type=int, default=2_000)
    p.add_argument("--feature-dim", type=int, default=1024)  # the aisfx expert's frame size
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    import torch

    from soundseek.adapt.memory import MemoryConfig, check_memory, memory_for
    from soundseek.adapt.scoring import text_vectors
    from soundseek.adapt.trainer import caption_vectors
    from soundseek.models import load_model

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    model = load_model("default")
    dim = text_vectors(model, caption_vectors(model, ["x"])).shape[1]
    n_windows = rng.integers(1, 6, a.files)
    starts = np.concatenate([[0], np.cumsum(n_windows)[:-1]])
    wins = rng.standard_normal((int(n_windows.sum()), dim)).astype(np.float32)
    wins /= np.linalg.norm(wins, axis=1, keepdims=True)
    feats = rng.standard_normal((a.files, a.feature_dim)).astype(np.float32)  # each file's mean expert frame
    sfx = rng.standard_normal((a.files, 512)).astype(np.float32)  # each file's mean aisfx embedding
    named = rng.random(a.files) < 0.6
    files = [FakeFile(i, bool(n)) for i, n in enumerate(named)]
    named_idx = np.flatnonzero(named)
    group = rng.integers(0, a.names, len(named_idx))
    t0 = time.perf_counter()
    captions = caption_vectors(model, [f"sound number {i} of the library" for i in range(a.names)])
    t_caps = time.perf_counter() - t0
    cfg = MemoryConfig()
    t0 = time.perf_counter()
    chk = check_memory(model, files, named_idx, group, captions, cfg, windows=(wins, starts), features=feats, sfx=sfx)
    t_check = time.perf_counter() - t0
    caption_of = np.full(a.files, -1)
    caption_of[named_idx] = group
    t0 = time.perf_counter()
    mem = memory_for(model, files, caption_of, captions, cfg, windows=(wins, starts), features=feats, sfx=sfx)
    t_build = time.perf_counter() - t0
    ranked = [(i, 0.5 - i * 1e-4, i, 0.0, 1.0) for i in range(400)]
    q = captions[7]
    mem.rerank(ranked, q, 10)
    t0 = time.perf_counter()
    for _ in range(50):
        mem.rerank(ranked, q, 10)
    t_query = (time.perf_counter() - t0) / 50
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": cpu_name(),
           "cpus": os.cpu_count(), "load_before": os.getloadavg()[0], "files": a.files, "windows": int(len(wins)),
           "names": a.names, "named_files": int(named.sum()), "spaces": list(cfg.spaces), "seconds": {
               "encode_captions": round(t_caps, 2), "check": round(t_check, 2), "build": round(t_build, 2),
               "apply_per_query_ms": round(t_query * 1000, 2)}, "check_splits": chk["seen_kinds"]["splits"]}
    print(json.dumps(out, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            f.write(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
