"""The training objective: the drift loss of a step's groups in pixel space or on an encoder's feature set.

Turns the ``drift`` config section into one callable, so the loop does not care which space the drift
lives in; ``drift.encoder_weights=auto`` (raydrift's MAE, trained once per dataset and cached) is resolved
here too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .drift import drift_loss

if TYPE_CHECKING:
    from raydrift.config.schema import DriftConfig

Objective = Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]


class PixelObjective:
    """Drift loss on raw samples: ``x [G, Cg, *shape]`` against ``pos [G, Cp, *shape]``."""

    def __init__(self, cfg: DriftConfig):
        self.cfg = cfg

    def __call__(
        self,
        x: torch.Tensor,
        pos: torch.Tensor,
        neg: torch.Tensor | None,
        weight_neg: torch.Tensor | None,
        temperatures: Sequence[float],
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scalar loss (mean over groups) and info (``scale``, ``force_ms [T]``)."""
        G = x.shape[0]
        flat = lambda t: None if t is None else t.reshape(G, t.shape[1], -1)  # noqa: E731
        loss, info = drift_loss(
            flat(x),
            flat(pos),
            flat(neg),
            weight_neg=weight_neg,
            temperatures=temperatures,
            kernel=self.cfg.kernel,
            normalization=self.cfg.normalization,
            affinity_floor=self.cfg.affinity_floor,
            compile=self.cfg.compile,
        )
        return loss.mean(), info


def build_objective(
    cfg: DriftConfig,
    sample_shape: tuple[int, ...] = (),
    device: torch.device | str = "cpu",
    dataset: str = "",
    *,
    train_images: Callable[[], torch.Tensor] | None = None,
    cache_dir: str | Path = "",
    log: Callable[[str], None] | None = print,
    bf16: bool = False,
) -> Objective:
    """``PixelObjective``, or for ``space=feature`` a ``FeatureObjective`` with ``cfg.encoder`` on ``device``.

    ``sample_shape`` (``(C, H, W)``) and ``dataset`` let the encoder check its input and name the dataset in
    its errors. ``encoder_weights=auto`` trains (or loads from ``cache_dir``) the MAE on ``train_images()``
    (the train split, uint8 ``[N, C, H, W]``). ``bf16`` (``train.precision=bf16``) runs the encoder under
    bf16 autocast on any device; the drift is float32 in every case.
    """
    if cfg.space == "pixel":
        return PixelObjective(cfg)
    from raydrift.nets.encoders import build_encoder

    from .features import FeatureObjective

    if len(sample_shape) != 3:
        raise ValueError(f"drift.space=feature needs image data [C, H, W], got samples of shape {sample_shape}")
    if cfg.encoder == "mae" and cfg.encoder_weights == "auto":
        from raydrift.cache import cache_dir as resolve_cache_dir
        from raydrift.nets.mae import cached_mae

        if train_images is None:
            raise ValueError("drift.encoder_weights=auto needs the training images to train the MAE on")
        weights = cached_mae(
            dataset,
            train_images(),
            resolve_cache_dir(str(cache_dir)),
            steps=cfg.encoder_auto_steps,
            device=device,
            log=log,
        )
        cfg = replace(cfg, encoder_weights=str(weights))
    encoder = build_encoder(
        cfg.encoder,
        cfg.encoder_weights,
        input_size=cfg.encoder_input_size,
        layers=cfg.encoder_layers,
        in_channels=sample_shape[0],
        dataset=dataset,
        device=device,
    )
    return FeatureObjective(cfg, encoder, bf16=bf16)
