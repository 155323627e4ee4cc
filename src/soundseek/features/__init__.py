"""Feature extraction and the on-disk feature store (computed once per file content and expert)."""

from .extract import FeatureReport, extract_features, pooled_vector
from .frames import window_frames, windowed_mean
from .store import FeatureStore, StoredFeatures, default_cache_dir, file_hash

__all__ = [
    "FeatureReport",
    "FeatureStore",
    "StoredFeatures",
    "default_cache_dir",
    "extract_features",
    "file_hash",
    "pooled_vector",
    "window_frames",
    "windowed_mean",
]
