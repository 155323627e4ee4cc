"""Hard-negative batches from the label structure (train/recipes/hard_negatives.py)."""

from __future__ import annotations

import numpy as np
import torch

from soundseek.train import trainer
from soundseek.train.config import TrainConfig
from soundseek.train.data import FeatureSet
from soundseek.train.recipes.hard_negatives import grouped_batches, grouped_sampler, label_groups


def two_family_set(n_per_label: int = 10) -> FeatureSet:
    """Six labels in two meaning families (caption vectors near +e0 or near +e1)."""
    rng = np.random.default_rng(0)
    labels, text, cap_clip = [], [], []
    for k in range(6):
        base = np.eye(8, dtype=np.float32)[0 if k < 3 else 1] + 0.05 * k
        for _ in range(n_per_label):
            clip = len(labels)
            labels.append(f"label{k}")
            text.append(base + 0.01 * rng.normal(size=8).astype(np.float32))
            cap_clip.append(clip)
    n = len(labels)
    return FeatureSet(clip_ids=[f"c{i}" for i in range(n)], audio={"aisfx": [np.zeros((2, 4), np.float32)] * n},
                      text={"minilm": np.stack(text)}, caption_clip=np.array(cap_clip), labels=labels)


def cfg(bs: int = 10) -> TrainConfig:
    return TrainConfig.from_dict({"batch_size": bs, "data": {"captions_per_clip": "sample"}})


def test_label_groups_follow_caption_meaning():
    fs = two_family_set()
    g = label_groups(fs, n_groups=2)
    assert len(set(g[:30])) == 1 and len(set(g[30:])) == 1 and g[0] != g[30]


def test_hard_batches_cover_every_clip_once_and_stay_within_a_group():
    fs = two_family_set()
    g = label_groups(fs, n_groups=2)
    batches = list(grouped_batches(fs, cfg(), torch.Generator().manual_seed(0), g, hard_fraction=1.0))
    clips = np.concatenate([c for c, _ in batches])
    assert sorted(clips.tolist()) == list(range(fs.n_clips))
    assert all(len(set(g[c])) == 1 for c, _ in batches)  # 30 clips per group, batches of 10
    for c, caps in batches:
        np.testing.assert_array_equal(fs.caption_clip[caps], c)


def test_random_fraction_mixes_groups_and_sampler_is_restored():
    fs = two_family_set()
    g = label_groups(fs, n_groups=2)
    batches = list(grouped_batches(fs, cfg(60), torch.Generator().manual_seed(1), g, hard_fraction=0.0))
    assert len(batches) == 1 and len(set(g[batches[0][0]])) == 2
    original = trainer.epoch_batches
    with grouped_sampler(2):
        assert trainer.epoch_batches is not original
        first = [c.tolist() for c, _ in trainer.epoch_batches(fs, cfg(), torch.Generator().manual_seed(0))]
        again = [c.tolist() for c, _ in trainer.epoch_batches(fs, cfg(), torch.Generator().manual_seed(0))]
        assert first == again  # deterministic for a seed
    assert trainer.epoch_batches is original
