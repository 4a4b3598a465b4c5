"""Frozen feature encoders for feature-space drifting, one registry entry per ``drift.encoder``.

Every encoder takes the generator's images in [-1, 1] ``[B, C, H, W]`` and returns named feature maps
``{layer: [B, c, h, w]}``. It applies its own input handling first: grayscale replicated to 3 channels
where the network wants RGB, a bilinear resize to ``input_size`` and the normalisation it was trained
with (ImageNet mean/std for the pretrained networks; none for our MAE, trained on [-1, 1]). Parameters
are frozen and the module stays in eval mode, but nothing runs under ``no_grad``: gradients flow through
it into the generator.

========== ===================================================== ============ =========================
name       network (package)                                     input        layers (default: all)
========== ===================================================== ============ =========================
resnet18   torchvision ``resnet18``, ImageNet-1k supervised      64 px, RGB   layer1..layer4 (/4../32)
resnet50   torchvision ``resnet50``, ImageNet-1k supervised (V2) 64 px, RGB   layer1..layer4
convnextv2 timm ``convnextv2_atto.fcmae`` (self-supervised FCMAE) 64 px, RGB   stages.0..stages.3
dinov2     timm ``vit_small_patch14_dinov2.lvd142m`` (DINOv2)     112 px, RGB  blocks.2/5/8/11 (8x8)
mae        :mod:`raydrift.nets.mae`, trained here on the dataset      native       stages.0..stages.3
========== ===================================================== ============ =========================

Small inputs are upsampled (64 px, as an earlier reproduction did, gives 16x16..2x2 ResNet maps;
``input_size=224`` is the networks' training size). Weights come from ``weights`` (a local file) or, if
that is empty, the usual download (torchvision's URL, the Hugging Face hub for timm); our ``mae`` always
needs a file. A missing file or a failed download raises :class:`EncoderWeightsError` saying where to get
the weights. Convolutional encoders run channels-last, and the ResNets' BatchNorms are folded into their
convolutions (frozen, eval mode: the same function, less work forward and backward).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .weights import EncoderWeightsError, check_file, load_strict, torch_load, unwrap

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_weights_setting(encoder: str, weights: str, dataset: str = "") -> None:
    """Fail before any work when ``drift.encoder_weights`` cannot work: a file that is not there, or no file
    for our ``mae`` (which has no download); ``auto`` and the usual downloads are checked when used."""
    how = (
        f"Train one first with `raydrift encoder train --dataset {dataset or '<dataset>'} --out PATH` and pass "
        "--set drift.encoder_weights=PATH, or --set drift.encoder_weights=auto to train one on the first use"
    )
    if encoder == "mae" and not weights:
        raise EncoderWeightsError(f"drift.encoder=mae needs a weights file (drift.encoder_weights). {how}.")
    if weights and weights != "auto":
        check_file(weights, encoder, how if encoder == "mae" else "Pass the path of an existing weights file.")


class Encoder(nn.Module):
    """A frozen network returning ``{layer: [B, c, h, w]}`` for images in [-1, 1] ``[B, C, H, W]``.

    Subclasses implement ``feature_maps`` (all of ``available``, from preprocessed input); ``forward``
    preprocesses and keeps the selected ``layers``.
    """

    available: tuple[str, ...]

    def __init__(
        self,
        name: str,
        *,
        rgb: bool,
        input_size: int,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        layers: Sequence[str] = (),
    ):
        super().__init__()
        self.name, self.rgb, self.input_size = name, rgb, input_size
        self.normalize = mean is not None
        if self.normalize:
            self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self._requested = tuple(layers)
        self.channels_last = False

    def _finish(self, channels_last: bool = False) -> Encoder:
        """Check the requested layers, freeze, eval; called at the end of a subclass's ``__init__``.

        ``channels_last``: convolutional nets run in NHWC, which oneDNN and cuDNN convolve faster.
        """
        unknown = [layer for layer in self._requested if layer not in self.available]
        if unknown:
            raise ValueError(f"encoder {self.name!r} has no layers {unknown}; it has {list(self.available)}")
        self.layers = self._requested or self.available
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)
        return self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> Encoder:
        return super().train(False)  # always eval: frozen statistics (BatchNorm) and no dropout

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images -> the network's input: channels, size, normalisation."""
        if self.rgb and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.input_size and tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            shrink = self.input_size < max(x.shape[-2:])
            size = (self.input_size, self.input_size)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)
        if self.normalize:
            x = ((x + 1) * 0.5 - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def feature_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        maps = self.feature_maps(self.preprocess(x))
        return {layer: maps[layer] for layer in self.layers}


# ---- torchvision ResNets ----------------------------------------------------------------------------


class ResNetEncoder(Encoder):
    available = ("layer1", "layer2", "layer3", "layer4")

    def __init__(self, name: str, arch: str, weights: str, *, input_size: int, layers: Sequence[str] = ()):
        import torchvision.models as tvm  # imported here: torchvision's model zoo is slow to import

        super().__init__(name, rgb=True, input_size=input_size, mean=IMAGENET_MEAN, std=IMAGENET_STD, layers=layers)
        net = getattr(tvm, arch)(weights=None)
        net.fc = nn.Identity()
        if weights != _RANDOM:
            state = _resnet_state_dict(arch, weights)
            load_strict(net, {k: v for k, v in state.items() if not k.startswith("fc.")}, name, weights)
        self.net = _fold_batchnorm(net.eval())
        self._finish(channels_last=True)

    def feature_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        n = self.net
        h = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        last = max(self.available.index(layer) for layer in self.layers)  # later stages are not needed
        out = {}
        for layer in self.available[: last + 1]:
            h = getattr(n, layer)(h)
            out[layer] = h
        return out


_TV_WEIGHTS = {"resnet18": "ResNet18_Weights.IMAGENET1K_V1", "resnet50": "ResNet50_Weights.IMAGENET1K_V2"}


def _resnet_state_dict(arch: str, weights: str) -> dict[str, torch.Tensor]:
    import torchvision.models as tvm

    enum_name, member = _TV_WEIGHTS[arch].split(".")
    tv_weights = getattr(getattr(tvm, enum_name), member)
    how = (
        f"Download {tv_weights.url} on a machine with internet (torchvision's {_TV_WEIGHTS[arch]}) and pass "
        "its path as drift.encoder_weights, or put it in the torch hub cache "
        f"({Path(torch.hub.get_dir()) / 'checkpoints'}), where torchvision finds it without a download."
    )
    if weights:
        return unwrap(torch_load(weights, arch, how))
    try:
        return tv_weights.get_state_dict(progress=False)
    except Exception as err:  # no network, proxy, disk: all mean "not available"
        raise EncoderWeightsError(f"Download of {arch} weights failed ({err!r:.200}). {how}") from err


def _fold_batchnorm(net: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm of a torchvision ResNet into the conv before it (same function, less
    memory traffic forward and backward)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net.conv1, net.bn1 = fuse_conv_bn_eval(net.conv1, net.bn1), nn.Identity()
    for block in (b for layer in (net.layer1, net.layer2, net.layer3, net.layer4) for b in layer):
        for i in (1, 2, 3):
            if hasattr(block, f"bn{i}"):
                conv, bn = getattr(block, f"conv{i}"), getattr(block, f"bn{i}")
                setattr(block, f"conv{i}", fuse_conv_bn_eval(conv, bn))
                setattr(block, f"bn{i}", nn.Identity())
        if block.downsample is not None:
            block.downsample = fuse_conv_bn_eval(block.downsample[0], block.downsample[1])
    return net


# ---- timm: ConvNeXt V2 and DINOv2 -------------------------------------------------------------------


class TimmEncoder(Encoder):
    """A timm model's intermediate feature maps (``forward_intermediates``), NCHW."""

    def __init__(
        self,
        name: str,
        model_name: str,
        weights: str,
        *,
        input_size: int,
        indices: Sequence[int],
        prefix: str,
        layers: Sequence[str] = (),
        channels_last: bool = False,
        **kwargs,
    ):
        import timm  # imported here: timm is slow to import

        super().__init__(name, rgb=True, input_size=input_size, mean=IMAGENET_MEAN, std=IMAGENET_STD, layers=layers)
        self.available = tuple(f"{prefix}.{i}" for i in indices)
        self.indices = list(indices)
        hub = timm.models.get_pretrained_cfg(model_name)
        how = (
            f"Download the weights of timm's {model_name!r} on a machine with internet (Hugging Face "
            f"https://huggingface.co/{hub.hf_hub_id}, file model.safetensors, or {hub.url or 'timm'}) and "
            "pass the file's path as drift.encoder_weights; or set HF_HUB_OFFLINE=1 with the model in the "
            "Hugging Face cache."
        )
        if weights == _RANDOM:
            self.net = timm.create_model(model_name, pretrained=False, **kwargs)
        elif weights:
            check_file(weights, model_name, how)
            try:
                self.net = timm.create_model(
                    model_name, pretrained=True, pretrained_cfg_overlay={"file": str(weights)}, **kwargs
                )
            except RuntimeError as err:  # state dict mismatch: a file for another model
                raise ValueError(f"{weights} does not hold {model_name} weights: {err}") from err
        else:
            try:
                self.net = timm.create_model(model_name, pretrained=True, **kwargs)
            except Exception as err:  # offline: huggingface_hub / urllib errors of many kinds
                raise EncoderWeightsError(f"Download of {model_name} weights failed ({err!r:.200}). {how}") from err
        self._finish(channels_last)

    def feature_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        wanted = [i for i, layer in zip(self.indices, self.available) if layer in self.layers]
        maps = self.net.forward_intermediates(x, indices=wanted, intermediates_only=True, output_fmt="NCHW")
        return dict(zip([layer for layer in self.available if layer in self.layers], maps))


# ---- our MAE ----------------------------------------------------------------------------------------


class MAEFeatureEncoder(Encoder):
    """The encoder of :mod:`raydrift.nets.mae` (trained on [-1, 1] images: no normalisation)."""

    def __init__(
        self,
        name: str,
        weights: str,
        *,
        input_size: int,
        layers: Sequence[str] = (),
        in_channels: int = 1,
        dataset: str = "",
    ):
        from .mae import MAEArch, MAEEncoderNet, load_mae

        super().__init__(name, rgb=False, input_size=input_size, mean=None, std=None, layers=layers)
        if weights == _RANDOM:
            self.net, self.meta = MAEEncoderNet(MAEArch(in_channels=in_channels)), {}
        else:
            how = (
                "Train one on the dataset first (no outside weights needed): "
                f"`raydrift encoder train --dataset {dataset or '<dataset>'} --out PATH`, then pass "
                "--set drift.encoder_weights=PATH; or --set drift.encoder_weights=auto to train one with the "
                "default recipe on the first use and cache it."
            )
            if not weights:
                raise EncoderWeightsError(f"drift.encoder=mae needs a weights file (drift.encoder_weights). {how}")
            check_file(weights, "mae", how)
            self.net, self.meta = load_mae(weights)
            if self.net.arch.in_channels != in_channels:
                raise ValueError(
                    f"the MAE at {weights} takes {self.net.arch.in_channels}-channel images (trained on "
                    f"{self.meta.get('dataset', '?')}), but this data has {in_channels}. {how}"
                )
        self.available = self.net.layer_names
        self._finish(channels_last=True)

    def feature_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(x)


# ---- registry ---------------------------------------------------------------------------------------

_RANDOM = "<random>"  # weights value meaning "random init, no file, no download" (tests, benchmarks)


@dataclass(frozen=True)
class EncoderSpec:
    """How to build one registry entry: ``build(weights, input_size, layers, in_channels, dataset)``."""

    build: Callable[..., Encoder]
    input_size: int  # default resize (0 = the data's own size)
    description: str


def _resnet(arch):
    return lambda w, size, layers, **_: ResNetEncoder(arch, arch, w, input_size=size, layers=layers)


def _convnextv2(w, size, layers, **_):
    return TimmEncoder(
        "convnextv2",
        "convnextv2_atto.fcmae",
        w,
        input_size=size,
        indices=range(4),
        prefix="stages",
        layers=layers,
        channels_last=True,
    )


def _dinov2(w, size, layers, **_):
    return TimmEncoder(
        "dinov2",
        "vit_small_patch14_dinov2.lvd142m",
        w,
        input_size=size,
        indices=(2, 5, 8, 11),
        prefix="blocks",
        layers=layers,
        img_size=size,
    )


def _mae(w, size, layers, *, in_channels, dataset):
    return MAEFeatureEncoder("mae", w, input_size=size, layers=layers, in_channels=in_channels, dataset=dataset)


ENCODERS: dict[str, EncoderSpec] = {
    "resnet18": EncoderSpec(_resnet("resnet18"), 64, "torchvision ResNet-18, ImageNet-1k supervised"),
    "resnet50": EncoderSpec(_resnet("resnet50"), 64, "torchvision ResNet-50, ImageNet-1k supervised (V2)"),
    "convnextv2": EncoderSpec(_convnextv2, 64, "timm convnextv2_atto.fcmae, self-supervised (FCMAE)"),
    "dinov2": EncoderSpec(_dinov2, 112, "timm vit_small_patch14_dinov2.lvd142m, self-supervised (DINOv2)"),
    "mae": EncoderSpec(_mae, 0, "raydrift's GroupNorm ResNet MAE, trained on the dataset itself"),
}


def build_encoder(
    name: str,
    weights: str | os.PathLike = "",
    *,
    input_size: int = 0,
    layers: Sequence[str] = (),
    in_channels: int = 1,
    dataset: str = "",
    random_init: bool = False,
    device: torch.device | str = "cpu",
) -> Encoder:
    """The frozen encoder ``name`` on ``device``.

    Args:
        weights: a local weights file; "" = the usual download (``mae``: required).
        input_size: resize inputs to this square size (0 = the entry's default; ``mae``: no resize).
        layers: feature maps to return (default: all the encoder has).
        in_channels: channels of the data (``mae`` checks its weights against it; RGB nets replicate 1).
        dataset: the data's name, for error messages.
        random_init: random weights, no file and no download (tests, speed benchmarks).
    """
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose from {', '.join(ENCODERS)}")
    spec = ENCODERS[name]
    w = _RANDOM if random_init else str(weights) if weights else ""
    enc = spec.build(w, input_size or spec.input_size, tuple(layers), in_channels=in_channels, dataset=dataset)
    return enc.to(device)
