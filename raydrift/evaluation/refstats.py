"""Reference statistics for FID: real images through a feature net once, cached as npz.

The cache key is (feature net id, dataset id, split, num_samples); the file also stores the provenance
(``metrics.PROVENANCE_KEYS``) that every FID against these statistics must be logged with.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from raydrift.data.images import to_float

from .feature_nets import FeatureNet
from .metrics import PROVENANCE_KEYS, FeatureStats, make_provenance

SUBSET_SEED = 0  # num_samples < len(images): a fixed random subset, the same on every machine
CHUNK = 4096  # images per feature_net call: bounds the feature memory, not the batch size


def reference_stats(
    feature_net: FeatureNet,
    dataset_id: str,
    split: str,
    images: torch.Tensor | np.ndarray | Callable[[], torch.Tensor | np.ndarray],
    *,
    num_samples: int | None = None,
    cache_dir: str | os.PathLike,
    batch_size: int | None = None,
) -> tuple[FeatureStats, dict[str, str | int]]:
    """Float64 feature statistics of a dataset split, and their provenance; cached in ``cache_dir``.

    ``images``: ``[N, C, H, W]`` float in [-1, 1] or uint8, or a function returning them (called only on a
    cache miss). ``num_samples``: all images if None, else a fixed random subset of that size.
    """
    reference = f"{dataset_id}:{split}"
    n_key = "all" if num_samples is None else str(num_samples)
    key_hash = hashlib.sha256(f"{feature_net.id}|{reference}|{n_key}".encode()).hexdigest()[:8]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"refstats-{feature_net.id}-{dataset_id}-{split}-{n_key}")
    path = Path(cache_dir) / f"{name}-{key_hash}.npz"

    if path.exists():
        with np.load(path) as f:
            provenance = {k: f[k].item() for k in PROVENANCE_KEYS}
        return FeatureStats.from_npz(path), provenance

    x = images() if callable(images) else images
    x = torch.as_tensor(x)
    if num_samples is not None:
        if num_samples > x.shape[0]:
            raise ValueError(f"num_samples={num_samples} > {x.shape[0]} images in {reference}")
        gen = torch.Generator().manual_seed(SUBSET_SEED)
        x = x[torch.randperm(x.shape[0], generator=gen)[:num_samples]]
    stats = FeatureStats()
    for i in range(0, x.shape[0], CHUNK):
        stats.update(feature_net.features(to_float(x[i : i + CHUNK]), batch_size=batch_size))
    provenance = make_provenance(feature_net.id, stats.num, reference)
    path.parent.mkdir(parents=True, exist_ok=True)
    stats.to_npz(path, **provenance)
    return stats, provenance
