"""Numeric precision of a training step: bf16 autocast of the networks, TF32 matmuls, a compiled generator.

``train.precision=bf16`` runs the generator's forward (and a feature encoder's, see
:class:`raydrift.method.features.FeatureObjective`) under ``torch.autocast`` on the run's device, CPU or
CUDA; parameters, optimizer state, the EMA and evaluation stay float32, and the drift field and loss are
always computed in full float32 (:func:`raydrift.method.drift.drift_loss` turns autocast and TF32 off
around the field). ``train.tf32`` lets CUDA's float32 matmuls and convolutions use TF32 elsewhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

PRECISIONS = ("fp32", "bf16")


class PrecisionError(ValueError):
    """The requested precision cannot run on this device; the message says what to use instead."""


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision the device cannot run, with what to do instead."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"train.precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        name = torch.cuda.get_device_name(device)
        raise PrecisionError(
            f"train.precision=bf16 needs a GPU with bfloat16 support (compute capability >= 8.0: A100, H100, "
            f"RTX 30xx or newer); {name} has none. Use train.precision=fp32."
        )
    if precision == "bf16" and device.type not in ("cpu", "cuda"):
        raise PrecisionError(f"train.precision=bf16 is supported on cpu and cuda, not {device.type}; use fp32")


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context the generator's forward runs in: bf16 autocast on ``device``, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def configure_matmul(device: torch.device, tf32: bool) -> None:
    """Let CUDA's float32 matmuls and cuDNN convolutions use TF32 (or not); nothing on other devices."""
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high" if tf32 else "highest")
        torch.backends.cudnn.allow_tf32 = tf32


def maybe_compile(model: torch.nn.Module, enabled: bool) -> torch.nn.Module | Callable:
    """``torch.compile(model)`` when ``enabled`` (compilation happens at the first call), else ``model``."""
    return torch.compile(model) if enabled else model
