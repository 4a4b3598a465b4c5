"""Sample grids as PNG: one row per class for images, a scatter plot for 2-D toys."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from raydrift.data.images import to_uint8


def image_grid(x: torch.Tensor, rows: int, *, pad: int = 1, min_cell: int = 32) -> Image.Image:
    """``x [rows * cols, C, H, W]`` (uint8, or float in [-1, 1]; row-major) -> one image; small samples are
    upscaled. Float images are clamped and rounded as every metric sees them (:func:`to_uint8`)."""
    n, C, H, W = x.shape
    cols = n // rows
    zoom = max(1, -(-min_cell // max(H, W)))
    img = (x if x.dtype == torch.uint8 else to_uint8(x))[: rows * cols].cpu()
    img = img.repeat_interleave(zoom, 2).repeat_interleave(zoom, 3)
    h, w = H * zoom, W * zoom
    canvas = torch.full((C, rows * (h + pad) + pad, cols * (w + pad) + pad), 255, dtype=torch.uint8)
    for i in range(rows * cols):
        r, c = divmod(i, cols)
        canvas[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = img[i]
    arr = canvas.permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0] if C == 1 else arr, mode="L" if C == 1 else "RGB")


def scatter_plot(points: torch.Tensor, reference: torch.Tensor | None = None, *, size: int = 400) -> Image.Image:
    """2-D ``points [N, 2]`` (black) over ``reference [M, 2]`` (light blue) rasterised to a square PNG."""
    both = points if reference is None else torch.cat([points, reference])
    lo, hi = both.min(0).values, both.max(0).values
    span = float((hi - lo).max().clamp_min(1e-6)) * 1.05
    center = (hi + lo) / 2
    canvas = np.full((size, size, 3), 255, dtype=np.uint8)

    def draw(p: torch.Tensor, color: tuple[int, int, int]) -> None:
        ij = ((p - center) / span + 0.5) * (size - 1)
        ij = ij.round().long().clamp(0, size - 1).numpy()
        canvas[size - 1 - ij[:, 1], ij[:, 0]] = color

    if reference is not None:
        draw(reference, (150, 190, 230))
    draw(points, (0, 0, 0))
    return Image.fromarray(canvas)


def save_png(image: Image.Image, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, format="PNG")
    tmp.replace(path)
    return path
