"""Samples files: generated images as they are scored, saved compactly to be evaluated elsewhere.

A samples file is an ``.npz`` (compressed) with ``images`` (uint8 ``[N, C, H, W]``, exactly
:func:`raydrift.data.images.to_uint8` of the generator's output, i.e. what every metric scores),
``labels`` (int64 ``[N]``, the class each image was generated for) and ``meta`` (a JSON string: at least
``config``, the run's resolved config as :func:`raydrift.config.to_dict` writes it, and ``step``).
``raydrift evaluate SAMPLES.npz`` scores one (e.g. TF-Inception FID on a machine that has the weights).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch


class SamplesFileError(ValueError):
    """A samples file that is not one: the message says what is missing or wrong."""


def save_samples(path: str | os.PathLike, images: torch.Tensor, labels: torch.Tensor, meta: dict[str, Any]) -> None:
    """Write uint8 ``images [N, C, H, W]`` and their ``labels [N]`` with ``meta`` (needs ``config``)."""
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise SamplesFileError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
    if labels.shape != images.shape[:1]:
        raise SamplesFileError(f"labels {tuple(labels.shape)} do not match {images.shape[0]} images")
    if "config" not in meta:
        raise SamplesFileError("meta needs the run's config (key 'config')")
    np.savez_compressed(
        path,
        images=images.cpu().numpy(),
        labels=labels.cpu().numpy().astype(np.int64),
        meta=np.array(json.dumps(meta)),
    )


def load_samples(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """``(images uint8 [N, C, H, W], labels int64 [N], meta)`` of a samples file written by :func:`save_samples`."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise SamplesFileError(f"{path} is not a samples file (.npz): {err}") from None
    missing = [k for k in ("images", "labels", "meta") if k not in z.files]
    if missing:
        raise SamplesFileError(f"{path} lacks {', '.join(missing)} (a samples file holds images, labels, meta)")
    images, labels = torch.from_numpy(z["images"]), torch.from_numpy(z["labels"]).long()
    if images.dtype != torch.uint8 or images.ndim != 4 or labels.shape != images.shape[:1]:
        raise SamplesFileError(
            f"{path}: images must be uint8 [N, C, H, W] with labels [N]; got images {images.dtype} "
            f"{tuple(images.shape)}, labels {tuple(labels.shape)}"
        )
    meta = json.loads(str(z["meta"]))
    if "config" not in meta:
        raise SamplesFileError(f"{path}: meta has no 'config' (the run's resolved config)")
    return images, labels, meta
