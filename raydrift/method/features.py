"""Multi-scale feature sets (paper appendix A.5) and the feature-space drifting objective.

A feature set maps images ``[B, C, H, W]`` to named keys, each ``[B, L, D]``: ``L`` vectors ("locations")
of dimension ``D`` per image. For every feature map ``F [B, c, h, w]`` of an encoder layer:

=============== ============================== =====================================================
key             L                              vector
=============== ============================== =====================================================
``layer/loc``   ``h * w``                      ``F[:, :, i, j]``, one per location
``layer/mean``  1                              mean of ``F`` over all locations
``layer/std``   1                              std of ``F`` over all locations
``layer/mean2`` ``(h // 2) * (w // 2)``        mean over each non-overlapping 2x2 patch
``layer/std2``  ``(h // 2) * (w // 2)``        std over each 2x2 patch
``layer/mean4`` ``(h // 4) * (w // 4)``        mean / std over each 4x4 patch (maps of at least 4x4)
``layer/std4``
``pixel``       1                              the flattened image, ``C * H * W``
``rms``         1                              per-channel root mean square of the image, ``C``
=============== ============================== =====================================================

Stds are population stds, ``sqrt(var + 1e-6)`` (finite gradients on constant patches); odd map sizes drop
the last row/column for the patch keys. ``pixel`` and ``rms`` use the generator's own output (before the
encoder's resize and normalisation): the paper's "vanilla" term and its per-channel energy of the encoder
input, taken as the RMS so it stays in pixel units.

The loss (:class:`FeatureObjective`) is the **sum over keys** of each key's drift loss, averaged over its
groups. Each key is one :func:`raydrift.method.drift.drift_loss` call over ``G * L`` groups (classes x locations)
of ``[Cg | Cp | Cn, D]`` samples, so its scale and per-temperature force normalisation are shared across
all classes and locations, and nothing loops over classes, vectors or temperatures in Python. With
``drift.compile`` the keys' fields run in raydrift's CPU kernels on a CPU (:mod:`raydrift.method.native`:
any shape, nothing to recompile); elsewhere they run eager: ``torch.compile`` of the field is specialised
to one shape, and a feature set has dozens (measured: past dynamo's recompile limit of 8 and slower than
eager on CPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from raydrift.nets.encoders import Encoder

from . import native
from .drift import drift_loss

if TYPE_CHECKING:
    from raydrift.config.schema import DriftConfig

STATS: tuple[str, ...] = ("loc", "global", "patch2", "patch4")
_VAR_EPS = 1e-6


def _pool_stats(f: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std ``[B, c, h // p, w // p]`` over non-overlapping ``p x p`` patches of ``f [B, c, h, w]``.

    Pooling keeps the map's memory layout (channels-last maps stay so); the variance is the pooled square of
    the deviation from the patch mean, not ``E[f^2] - mean^2``, so it does not cancel.
    """
    h, w = f.shape[-2] // p * p, f.shape[-1] // p * p
    f = f[..., :h, :w]
    mean = F.avg_pool2d(f, p)
    dev = f - mean.repeat_interleave(p, dim=-2).repeat_interleave(p, dim=-1)
    return mean, (F.avg_pool2d(dev.square(), p) + _VAR_EPS).sqrt()


def _vectors(m: torch.Tensor) -> torch.Tensor:
    """``[B, c, h, w]`` -> ``[B, h * w, c]``: one vector per location, row-major (a view if channels-last)."""
    return m.flatten(2).transpose(1, 2)


def map_statistics(f: torch.Tensor, stats: Sequence[str] = STATS) -> dict[str, torch.Tensor]:
    """The A.5 statistics of one feature map ``f [B, c, h, w]``: ``{stat: [B, L, c]}`` (float32)."""
    f = f.float()
    h, w = f.shape[-2:]
    out = {}
    if "loc" in stats:
        out["loc"] = _vectors(f)
    if "global" in stats:
        mean = f.mean((2, 3), keepdim=True)
        out["mean"] = _vectors(mean)
        out["std"] = _vectors(((f - mean).square().mean((2, 3), keepdim=True) + _VAR_EPS).sqrt())
    for p in (2, 4):
        if f"patch{p}" in stats and h >= p and w >= p:
            mean, std = _pool_stats(f, p)
            out[f"mean{p}"], out[f"std{p}"] = _vectors(mean), _vectors(std)
    return out


def feature_sets(
    x: torch.Tensor,
    feature_maps: dict[str, torch.Tensor],
    stats: Sequence[str] = STATS,
    *,
    pixel: bool = True,
    rms: bool = True,
) -> dict[str, torch.Tensor]:
    """All keys for images ``x [B, C, H, W]`` and their encoder maps ``{layer: [B, c, h, w]}``.

    Returns ``{key: [B, L, D]}`` in a fixed order: ``pixel``, ``rms``, then layer by layer (module docstring).
    """
    out = {}
    if pixel:
        out["pixel"] = x.float().flatten(1)[:, None]
    if rms:
        out["rms"] = (x.float().square().mean((2, 3)) + _VAR_EPS).sqrt()[:, None]
    for layer, f in feature_maps.items():
        for stat, v in map_statistics(f, stats).items():
            out[f"{layer}/{stat}"] = v
    return out


def as_groups(v: torch.Tensor, G: int) -> torch.Tensor:
    """``[G * n, L, D]`` (sample-major within each class) -> ``[G * L, n, D]``: group ``g * L + l``."""
    _, L, D = v.shape
    return v.view(G, -1, L, D).transpose(1, 2).reshape(G * L, -1, D)


class FeatureObjective:
    """Drift loss summed over the feature set's keys: same call as ``PixelObjective``.

    ``x [G, Cg, C, H, W]`` (generated, with grad) against ``pos [G, Cp, C, H, W]`` and optional extra
    negatives ``neg [G, Cn, C, H, W]`` weighted by ``weight_neg [G, Cn]``. The encoder runs once on the
    generated images (with grad: it is frozen, but gradients flow through it into the generator) and once
    on positives and negatives together (no grad), under bf16 autocast on CUDA if ``cfg.encoder_bf16``, and
    on any device if ``bf16`` (``train.precision=bf16``). The keys are float32 either way.
    """

    def __init__(self, cfg: DriftConfig, encoder: Encoder, *, bf16: bool = False):
        self.cfg, self.encoder, self.bf16 = cfg, encoder, bf16

    def feature_sets(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{key: [B, L, D]}`` of images ``x [B, C, H, W]``."""
        bf16 = self.bf16 or (self.cfg.encoder_bf16 and x.device.type == "cuda")
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            maps = self.encoder(x) if self.cfg.feature_stats else {}
        c = self.cfg
        return feature_sets(x, maps, c.feature_stats, pixel=c.feature_pixel_key, rms=c.feature_rms_key)

    def __call__(
        self,
        x: torch.Tensor,
        pos: torch.Tensor,
        neg: torch.Tensor | None,
        weight_neg: torch.Tensor | None,
        temperatures: Sequence[float],
    ) -> tuple[torch.Tensor, dict]:
        """Scalar loss and info: ``scale`` and ``force_ms [T]`` (means over keys) and per-key dicts
        ``per_key`` (loss), ``per_key_scale``, ``per_key_force_ms``."""
        G, Cg = x.shape[:2]
        Cp = pos.shape[1]
        f_gen = self.feature_sets(x.flatten(0, 1))
        with torch.no_grad():
            real = pos.flatten(0, 1) if neg is None else torch.cat([pos.flatten(0, 1), neg.flatten(0, 1)])
            f_real = self.feature_sets(real)
        total = x.new_zeros((), dtype=torch.float32)
        per_key, per_scale, per_ms = {}, {}, {}
        kernels = self.cfg.compile and native.supports(x, self.cfg.kernel, self.cfg.normalization)
        for key, v in f_gen.items():
            L = v.shape[1]
            y = f_real[key]
            y_neg = w = None
            if neg is not None:
                y_neg = as_groups(y[G * Cp :], G)
                if weight_neg is not None:
                    w = weight_neg[:, None, :].expand(G, L, -1).reshape(G * L, -1)
            loss, info = drift_loss(
                as_groups(v, G),
                as_groups(y[: G * Cp], G),
                y_neg,
                weight_neg=w,
                temperatures=temperatures,
                kernel=self.cfg.kernel,
                normalization=self.cfg.normalization,
                affinity_floor=self.cfg.affinity_floor,
                compile=kernels,  # never torch.compile here: one graph per key shape, past dynamo's limit
            )
            loss = loss.mean()
            total = total + loss
            per_key[key], per_scale[key], per_ms[key] = loss.detach(), info["scale"], info["force_ms"]
        return total, {
            "scale": torch.stack(list(per_scale.values())).mean(),
            "force_ms": torch.stack(list(per_ms.values())).mean(0),
            "per_key": per_key,
            "per_key_scale": per_scale,
            "per_key_force_ms": per_ms,
        }
