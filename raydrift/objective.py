"""The training objective: drift loss of a step's groups in pixel space or on an encoder's feature set.

Turns the config into one callable so the loop does not care which space the drift lives in.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .config import DriftConfig
from .drift import drift_loss


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
        G, Cg = x.shape[:2]
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
):
    """``PixelObjective``, or for ``space=feature`` a ``FeatureObjective`` with ``cfg.encoder`` on ``device``.

    ``sample_shape`` (``(C, H, W)``) and ``dataset`` let the encoder check its input and name the dataset in
    its errors (e.g. how to train the MAE a missing weights file should hold).
    """
    if cfg.space == "pixel":
        return PixelObjective(cfg)
    from .encoders import build_encoder
    from .features import FeatureObjective

    if len(sample_shape) != 3:
        raise ValueError(f"drift.space=feature needs image data [C, H, W], got samples of shape {sample_shape}")
    encoder = build_encoder(
        cfg.encoder,
        cfg.encoder_weights,
        input_size=cfg.encoder_input_size,
        layers=cfg.encoder_layers,
        in_channels=sample_shape[0],
        dataset=dataset,
        device=device,
    )
    return FeatureObjective(cfg, encoder)
