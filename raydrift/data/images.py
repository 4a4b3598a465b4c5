"""The one place where images change representation.

Datasets hold uint8 ``[N, C, H, W]``; the networks see float32 in ``[-1, 1]``. Generator outputs are not
bounded, so whatever is scored, saved or shown goes through :func:`to_uint8` (clamp to the data range and
round to 8 bits, as writing a PNG does) first: the FID of samples equals the FID of their saved PNGs.
"""

from __future__ import annotations

import numpy as np
import torch


def to_float(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 images (``[0, 255]``) -> float32 in ``[-1, 1]``; float input is returned as float32 unchanged."""
    x = torch.as_tensor(x)
    if x.dtype == torch.uint8:
        return x.float().div_(127.5).sub_(1.0)
    return x.float()


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float images in ``[-1, 1]`` -> uint8, clamped and rounded to nearest (what a PNG of them holds)."""
    return (x.float() * 127.5 + 127.5).round_().clamp_(0, 255).to(torch.uint8)
