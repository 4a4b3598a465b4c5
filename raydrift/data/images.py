"""The one place where images change representation.

Datasets hold uint8 ``[N, C, H, W]``; the networks see float32 in ``[-1, 1]``. Generator outputs are not
bounded, so what is scored, saved and shown is :func:`to_uint8` of them: clamped to the data range and
rounded to 8 bits exactly as writing a PNG does (edm's and torch-fidelity's ``x * 127.5 + 128``, then
truncation), so that the FID of samples equals the FID of their saved PNGs.
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
    """Float images in ``[-1, 1]`` -> uint8, clamped and rounded to nearest: the pixels a PNG of them holds."""
    return (x.float() * 127.5 + 128).clamp_(0, 255).to(torch.uint8)


def out_of_range(x: torch.Tensor) -> float:
    """Fraction of the values of float images ``x`` outside the data range ``[-1, 1]`` (what clamping cuts)."""
    return (x.abs() > 1).float().mean().item()
