"""Hard-negative batches from the corpus class structure (an experiment of the variants runner).

Random batches of 64 clips from 223 labels mostly pit a caption against unrelated sounds
("door slam" vs "rain"), which the heads separate after a few epochs.  Here the labels are
grouped by meaning (k-means on the mean sentence vector of each label's captions) and an epoch's
clip order is laid out group by group, so a batch holds related classes ("door slam", "door
creak", "drawer close") that the model must tell apart.  With ``data.label_positives`` clips of
the *same* label remain positives, so only related-but-different classes become the hard
negatives.  ``hard_fraction`` of the batches are built this way, the rest stay random.

Used through :func:`grouped_sampler` (it swaps ``trainer.epoch_batches`` for one training run);
the training loop (``trainer.train_model``, the one loop of soundseek) is otherwise unchanged.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from .. import trainer as _trainer


def label_groups(fs, n_groups: int, seed: int = 0) -> np.ndarray:
    """Group id per clip: k-means (cosine) over the labels' mean caption vectors."""
    expert = sorted(fs.text)[0]
    sent = fs.text[expert]
    sent = sent / np.maximum(np.linalg.norm(sent, axis=1, keepdims=True), 1e-8)
    labels = [lab or f"\0{i}" for i, lab in enumerate(fs.labels)]
    names = sorted(set(labels))
    index = {n: k for k, n in enumerate(names)}
    lab_of_clip = np.array([index[lab] for lab in labels])
    vec = np.zeros((len(names), sent.shape[1]), np.float64)
    np.add.at(vec, lab_of_clip[fs.caption_clip], sent)
    vec /= np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-8)
    k = min(n_groups, len(names))
    rng = np.random.default_rng(seed)
    centres = vec[rng.choice(len(names), k, replace=False)]
    for _ in range(50):
        assign = np.argmax(vec @ centres.T, axis=1)
        new = np.stack([vec[assign == c].mean(0) if np.any(assign == c) else centres[c] for c in range(k)])
        new /= np.maximum(np.linalg.norm(new, axis=1, keepdims=True), 1e-8)
        if np.allclose(new, centres):
            break
        centres = new
    return assign[lab_of_clip]


def grouped_batches(fs, cfg, gen: torch.Generator, groups: np.ndarray, hard_fraction: float):
    """Like ``trainer.epoch_batches`` but ``hard_fraction`` of the clips are ordered group by group."""
    order = torch.randperm(fs.n_clips, generator=gen).numpy()
    n_hard = int(round(hard_fraction * len(order)))
    hard, easy = order[:n_hard], order[n_hard:]
    group_order = torch.randperm(int(groups.max()) + 1, generator=gen).numpy()
    rank = np.empty_like(group_order)
    rank[group_order] = np.arange(len(group_order))
    hard = hard[np.argsort(rank[groups[hard]], kind="stable")]  # within a group: still random
    bs = cfg.batch_size
    batches = [hard[lo : lo + bs] for lo in range(0, len(hard), bs)]
    batches += [easy[lo : lo + bs] for lo in range(0, len(easy), bs)]
    for b in torch.randperm(len(batches), generator=gen).numpy():
        clips = batches[b]
        if len(clips) < 2:
            continue
        if cfg.data.captions_per_clip == "all":
            caps = np.concatenate([fs.clip_captions[c] for c in clips])
        else:
            caps = np.array(
                [fs.clip_captions[c][int(torch.randint(len(fs.clip_captions[c]), (), generator=gen))] for c in clips]
            )
        yield clips, caps


@contextlib.contextmanager
def grouped_sampler(n_groups: int, hard_fraction: float = 1.0):
    """Within the block, the trainer draws hard-negative batches (see the module docstring)."""
    original = _trainer.epoch_batches
    cache: dict[int, np.ndarray] = {}

    def batches(fs, cfg, gen):
        if id(fs) not in cache:
            cache[id(fs)] = label_groups(fs, n_groups, seed=cfg.seed)
        return grouped_batches(fs, cfg, gen, cache[id(fs)], hard_fraction)

    _trainer.epoch_batches = batches
    try:
        yield
    finally:
        _trainer.epoch_batches = original
