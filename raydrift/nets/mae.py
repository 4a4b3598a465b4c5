"""raydrift's own feature encoder: a GroupNorm ResNet trained as a masked autoencoder on the dataset itself.

After the drifting paper's recipe (a ResNet-style MAE, no outside weights), scaled for small images:

- encoder: conv3x3 stem, then one stage per entry of ``widths``, each ``blocks`` pre-activation residual
  blocks (GroupNorm, SiLU), the first one strided; its stage outputs are the feature maps
  ``{"stages.0": [B, w0, H/2, W/2], ..., "stages.3": [B, w3, H/16, W/16]}`` (sizes rounded up);
- decoder (training only): every stage projected to one width, upsampled to stage 0, summed, two conv
  blocks, upsampled to the input, a conv to pixels;
- loss: random ``patch x patch`` patches (``mask_ratio`` of them) are zeroed in the input; L2 between the
  reconstruction and the image on the masked pixels only;
- AdamW with warm-up and cosine decay; the saved encoder is the EMA of the trained one.

Weights file (``save_mae`` / ``load_mae``): a ``torch.save`` dict with ``format``, ``arch`` (the
:class:`MAEArch` fields), ``encoder`` (the EMA state dict) and ``meta`` (dataset, image shape, steps, final
loss, ...). Pure torch: no Ray, W&B, click or polars.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from raydrift.cache import locked
from raydrift.data.images import to_float

FORMAT = "raydrift-mae-v1"


@dataclass(frozen=True)
class MAEArch:
    """Shape of the MAE encoder (what a weights file needs to rebuild it)."""

    in_channels: int = 1
    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks: int = 1
    groups: int = 8

    def __post_init__(self):
        if self.in_channels < 1 or self.blocks < 1 or not self.widths:
            raise ValueError(f"bad MAE architecture {self}")
        if any(w % self.groups for w in self.widths):
            raise ValueError(f"every width in {self.widths} must be divisible by groups={self.groups}")


class _Block(nn.Module):
    """Pre-activation residual block: GN-SiLU-conv3x3 twice; 1x1 conv shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1, stride=stride) if (stride != 1 or c_in != c_out) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (x if self.skip is None else self.skip(x))


class MAEEncoderNet(nn.Module):
    """The feature network: images in [-1, 1] ``[B, C, H, W]`` -> ``{"stages.i": [B, w_i, h_i, w_i]}``."""

    def __init__(self, arch: MAEArch):
        super().__init__()
        self.arch = arch
        w0 = arch.widths[0]
        self.stem = nn.Conv2d(arch.in_channels, w0, 3, padding=1)
        stages, c = [], w0
        for w in arch.widths:
            blocks = [_Block(c, w, 2, arch.groups)] + [_Block(w, w, 1, arch.groups) for _ in range(arch.blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            c = w
        self.stages = nn.ModuleList(stages)
        self.layer_names = tuple(f"stages.{i}" for i in range(len(stages)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.stem(x)
        out = {}
        for name, stage in zip(self.layer_names, self.stages):
            h = stage(h)
            out[name] = h
        return out


class MAE(nn.Module):
    """Encoder + light decoder; ``loss(x, generator)`` is the masked-patch L2 of one batch."""

    def __init__(self, arch: MAEArch, decoder_width: int = 64, patch_size: int = 4, mask_ratio: float = 0.5):
        super().__init__()
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        self.encoder = MAEEncoderNet(arch)
        self.patch_size, self.mask_ratio = patch_size, mask_ratio
        d = decoder_width
        self.lateral = nn.ModuleList(nn.Conv2d(w, d, 1) for w in arch.widths)
        self.decode = nn.Sequential(
            nn.GroupNorm(8, d), nn.SiLU(), nn.Conv2d(d, d, 3, padding=1),
            nn.GroupNorm(8, d), nn.SiLU(), nn.Conv2d(d, d, 3, padding=1),
        )  # fmt: skip
        self.head = nn.Conv2d(d, arch.in_channels, 3, padding=1)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        feats = list(self.encoder(x).values())
        size = feats[0].shape[-2:]
        h = sum(F.interpolate(lat(f), size=size, mode="nearest") for lat, f in zip(self.lateral, feats))
        h = F.interpolate(self.decode(h), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(h)

    def random_mask(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Float mask ``[B, 1, H, W]``, 1 on masked pixels: ``mask_ratio`` of the patches, per image."""
        B, _, H, W = x.shape
        p = self.patch_size
        hp, wp = -(-H // p), -(-W // p)
        n = hp * wp
        n_mask = max(1, round(n * self.mask_ratio))
        noise = torch.rand(B, n, generator=generator, device=x.device)
        mask = torch.zeros(B, n, device=x.device)
        mask.scatter_(1, noise.argsort(dim=1)[:, :n_mask], 1.0)
        mask = mask.view(B, 1, hp, 1, wp, 1).expand(B, 1, hp, p, wp, p).reshape(B, 1, hp * p, wp * p)
        return mask[:, :, :H, :W]

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean squared error on the masked pixels of ``x [B, C, H, W]`` (in [-1, 1])."""
        mask = self.random_mask(x, generator)
        pred = self.reconstruct(x * (1 - mask))
        err = (pred - x).square().mean(dim=1, keepdim=True)
        return (err * mask).sum() / mask.sum()


def _lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def train_mae(
    x: torch.Tensor,
    *,
    arch: MAEArch | None = None,
    steps: int = 3000,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 0.05,
    warmup: int = 100,
    patch_size: int = 4,
    mask_ratio: float = 0.5,
    decoder_width: int = 64,
    ema_decay: float = 0.999,
    seed: int = 0,
    device: torch.device | str = "cpu",
    log: Callable[[str], None] | None = print,
    log_every: int = 100,
) -> tuple[MAEEncoderNet, dict[str, Any]]:
    """Train an MAE on images ``x`` (uint8 ``[N, C, H, W]`` or float in [-1, 1]).

    Returns the EMA encoder (eval mode, frozen) and a summary (``losses`` per ``log_every`` window,
    ``final_loss``, ``seconds``). Deterministic given ``seed`` on CPU; the global RNG is left untouched.
    """
    x = to_float(x)
    arch = arch or MAEArch(in_channels=x.shape[1])
    if arch.in_channels != x.shape[1]:
        raise ValueError(f"arch.in_channels={arch.in_channels} but the images have {x.shape[1]} channels")
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mae = MAE(arch, decoder_width=decoder_width, patch_size=patch_size, mask_ratio=mask_ratio).to(device)
    ema = copy.deepcopy(mae.encoder).eval().requires_grad_(False)
    opt = torch.optim.AdamW(mae.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay)
    g_data = torch.Generator().manual_seed(seed)
    g_mask = torch.Generator(device=device).manual_seed(seed + 1)
    perm, pos = torch.randperm(len(x), generator=g_data), 0
    window, losses, t0 = [], [], time.perf_counter()
    mae.train()
    for step in range(steps):
        if pos + batch_size > len(perm):  # a fresh epoch: every image once before any repeats
            perm, pos = torch.randperm(len(x), generator=g_data), 0
        batch = x[perm[pos : pos + batch_size]].to(device)
        pos += batch_size
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, steps, lr, warmup)
        loss = mae.loss(batch, g_mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), mae.encoder.parameters()):
                p_ema.lerp_(p, 1 - ema_decay)
        window.append(loss.item())
        if (step + 1) % log_every == 0 or step + 1 == steps:
            losses.append(sum(window) / len(window))
            window = []
            if log is not None:
                rate = (step + 1) / (time.perf_counter() - t0)
                log(f"mae step {step + 1:>6}/{steps}  loss {losses[-1]:.4f}  {rate:5.2f} it/s")
    summary = {
        "losses": losses,
        "final_loss": losses[-1] if losses else float("nan"),
        "seconds": time.perf_counter() - t0,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "patch_size": patch_size,
        "mask_ratio": mask_ratio,
        "ema_decay": ema_decay,
        "seed": seed,
    }
    return ema, summary


def save_mae(path: str | os.PathLike, encoder: MAEEncoderNet, meta: dict[str, Any]) -> Path:
    """Write the encoder's weights, its architecture and ``meta`` to ``path`` (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": FORMAT,
        "arch": dataclasses.asdict(encoder.arch),
        "encoder": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
        "meta": meta,
    }
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_mae(path: str | os.PathLike) -> tuple[MAEEncoderNet, dict[str, Any]]:
    """The encoder saved by :func:`save_mae` at ``path`` (eval mode, frozen) and its ``meta``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a raydrift MAE weights file (format {FORMAT!r}); make one with "
            "`raydrift encoder train --dataset <name> --out PATH`"
        )
    arch = state["arch"]
    net = MAEEncoderNet(MAEArch(**(arch | {"widths": tuple(arch["widths"])})))
    net.load_state_dict(state["encoder"])
    return net.eval().requires_grad_(False), state["meta"]


@torch.no_grad()
def knn_accuracy(
    encoder: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    k: int = 10,
    batch_size: int = 500,
) -> float:
    """k-NN (cosine, majority vote) test accuracy on the encoder's globally pooled, concatenated stages.

    A quick check that the features carry class information; images in [-1, 1] or uint8.
    """

    def embed(x: torch.Tensor) -> torch.Tensor:
        out = []
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            xb = to_float(xb)
            maps = encoder(xb.to(next(encoder.parameters()).device))
            out.append(torch.cat([m.float().mean((2, 3)) for m in maps.values()], 1).cpu())
        return F.normalize(torch.cat(out), dim=1)

    f_train, f_test = embed(x_train), embed(x_test)
    nearest = (f_test @ f_train.T).topk(k, dim=1).indices
    votes = F.one_hot(y_train[nearest], int(y_train.max()) + 1).sum(1)
    return (votes.argmax(1) == y_test).float().mean().item()


AUTO_STEPS = 2000  # the `raydrift encoder train` default


def cached_mae(
    dataset: str,
    x: torch.Tensor,
    cache_dir: str | os.PathLike,
    *,
    steps: int = AUTO_STEPS,
    seed: int = 0,
    device: torch.device | str = "cpu",
    log: Callable[[str], None] | None = print,
) -> Path:
    """The weights file of an MAE trained with the default recipe on ``x`` (``dataset``'s train split).

    Taken from ``cache_dir`` when present; else trained now, while concurrent callers (other trials) wait
    for it and then load the same file (``drift.encoder_weights=auto``).
    """
    C, H, W = x.shape[1:]
    patch = 2 if max(H, W) <= 16 else 4
    arch = MAEArch(in_channels=C)
    h = hashlib.sha256(
        json.dumps([dataset, list(x.shape), steps, seed, patch, FORMAT, dataclasses.asdict(arch)]).encode()
    )
    h.update(x[:: max(1, len(x) // 256)].contiguous().cpu().numpy().tobytes())
    path = Path(cache_dir) / f"mae-{dataset}-{h.hexdigest()[:8]}.pt"
    with locked(path.with_name(path.name + ".lock")):
        if not path.exists():
            if log:
                log(f"training the MAE encoder for {dataset} ({steps} steps; cached at {path})")
            net, summary = train_mae(x, arch=arch, steps=steps, patch_size=patch, seed=seed, device=device, log=log)
            save_mae(path, net, summary | {"dataset": dataset, "image_shape": [C, H, W], "train_images": len(x)})
    return path
