"""Feature networks for FID, and a small LeNet classifier trained on the dataset itself.

``FeatureNet`` is the interface evaluation uses: float images in [-1, 1] ``[N, C, H, W]`` in, features
``[N, dim]`` (and class logits ``[N, K]`` where the net has them) out, batched internally, under no_grad.
The LeNet here gives a fast FID (and a classifier Inception-style score) on CPU and in tests; standard
Inception FID is :mod:`raydrift.evaluation.inception`. A LeNet FID is comparable only to FIDs with the
same ``id``: the id carries a hash of the trained weights themselves (training is bit-exact only for a
fixed thread count).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raydrift.cache import locked
from raydrift.data.images import to_float

ARCH_VERSION = "lenet-v1"  # bump when LeNet or train_classifier changes: it invalidates cached weights


class FeatureNet(ABC):
    """Features (and optionally class logits) of float images in [-1, 1] ``[N, C, H, W]``.

    Subclasses set ``id`` (the FID provenance name), ``dim``, ``has_logits``, ``device`` and implement
    ``forward_batch``; the public methods batch, move data to ``device`` and back to the input's device.
    """

    id: str
    dim: int
    has_logits: bool
    device: torch.device
    batch_size: int = 256

    @abstractmethod
    def forward_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One batch ``[B, C, H, W]`` on ``device`` -> (features ``[B, dim]``, logits ``[B, K]`` or None)."""

    def features(self, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Features ``[N, dim]`` (float32, on ``x``'s device)."""
        return self._run(x, batch_size, want_logits=False)[0]

    def logits(self, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Class logits ``[N, K]`` (float32, on ``x``'s device); raises if the net has none."""
        return self._run(x, batch_size, want_logits=True)[1]

    def features_and_logits(self, x: torch.Tensor, batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Both from one forward pass (FID and IS of the same samples)."""
        return self._run(x, batch_size, want_logits=True)

    @torch.no_grad()
    def _run(self, x: torch.Tensor, batch_size: int | None, want_logits: bool):
        if want_logits and not self.has_logits:
            raise ValueError(f"feature net {self.id!r} has no class logits")
        if x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"expected float images [N, C, H, W] in [-1, 1], got {x.dtype} {tuple(x.shape)}")
        bs = batch_size or self.batch_size
        feats, logits = [], []
        for i in range(0, x.shape[0], bs):
            f, z = self.forward_batch(x[i : i + bs].to(self.device, torch.float32))
            feats.append(f.float().to(x.device))
            if want_logits:
                logits.append(z.float().to(x.device))
        return torch.cat(feats), torch.cat(logits) if want_logits else None


class LeNet(nn.Module):
    """conv3x3-relu-pool x 2 -> fc(feature_dim) -> relu (the features) -> fc(num_classes).

    Input ``[N, in_channels, H, W]``; the pools need H and W divisible by 4 (8, 28, 32 are). Defaults:
    width 16 for grayscale, 32 for colour; ``feature_dim`` 64 for images up to 16 px, else 128.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: tuple[int, int],
        num_classes: int,
        feature_dim: int | None = None,
        width: int | None = None,
    ):
        super().__init__()
        h, w = image_size
        width = width or (16 if in_channels == 1 else 32)
        self.feature_dim = feature_dim or (64 if max(h, w) <= 16 else 128)
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.fc = nn.Linear(2 * width * (h // 4) * (w // 4), self.feature_dim)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ClassifierFeatureNet(FeatureNet):
    """A trained LeNet as a ``FeatureNet``; ``accuracy`` on held-out data if it was measured."""

    has_logits = True

    def __init__(self, model: LeNet, id: str, accuracy: float | None = None, from_cache: bool = False):
        self.model = model.eval().requires_grad_(False)
        self.id = id
        self.dim = model.feature_dim
        self.accuracy = accuracy
        self.from_cache = from_cache

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.model.features(x)
        return f, self.model.head(f)


def train_classifier(
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    num_classes: int,
    *,
    epochs: int,
    seed: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    device: torch.device | str = "cpu",
) -> LeNet:
    """Train a LeNet with Adam on ``x`` (uint8 or [-1, 1] float images), ``y [N]``; eval mode on return.

    Deterministic given ``seed`` on CPU: the init and the shuffles use their own generators, and the
    global RNG state is left untouched.
    """
    x, y = to_float(x), torch.as_tensor(y).long()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LeNet(x.shape[1], tuple(x.shape[2:]), num_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=gen)
        for i in range(0, x.shape[0], batch_size):
            idx = perm[i : i + batch_size]
            loss = F.cross_entropy(model(x[idx].to(device)), y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(net: FeatureNet, x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> float:
    """Top-1 accuracy of ``net``'s logits on ``x`` (uint8 or [-1, 1] float images), ``y [N]``."""
    pred = net.logits(to_float(x)).argmax(dim=1)
    return (pred == torch.as_tensor(y).long()).float().mean().item()


def weights_hash(model: nn.Module) -> str:
    """8 hex digits of a hash of every parameter and buffer (names and bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:8]


def load_or_train_classifier(
    dataset_id: str,
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    num_classes: int,
    cache_dir: str | os.PathLike,
    *,
    epochs: int = 2,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 1e-3,
    x_test: torch.Tensor | np.ndarray | None = None,
    y_test: torch.Tensor | np.ndarray | None = None,
    device: torch.device | str = "cpu",
) -> ClassifierFeatureNet:
    """The LeNet for ``dataset_id`` trained on ``(x, y)``, from ``cache_dir`` or trained and cached there.

    The cache file is ``classifier-<dataset_id>-<hash8>.pt``, the hash covering the training data, the
    architecture version and every training setting; the returned net's ``id`` is
    ``lenet:<dataset_id>:e<epochs>:<hash8>``. If ``x_test, y_test`` are given, ``accuracy`` is measured on
    them (every call; it is cheap).
    """
    x, y = to_float(x), torch.as_tensor(y).long()
    settings = dict(
        arch=ARCH_VERSION,
        shape=list(x.shape),
        classes=num_classes,
        epochs=epochs,
        seed=seed,
        bs=batch_size,
        lr=lr,
    )
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    h.update(x.contiguous().numpy().tobytes())
    h.update(y.numpy().tobytes())
    path = Path(cache_dir) / f"classifier-{dataset_id}-{h.hexdigest()[:8]}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)

    # One process trains, the others wait and load its weights: racing trainers would each use their own
    # (thread-count dependent) weights under one name, and reference statistics would not match them.
    with locked(path.with_name(path.name + ".lock")):
        from_cache = path.exists()
        if from_cache:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            model = LeNet(**ckpt["config"])
            model.load_state_dict(ckpt["state_dict"])
        else:
            t0 = time.perf_counter()
            model = train_classifier(
                x, y, num_classes, epochs=epochs, seed=seed, batch_size=batch_size, lr=lr, device=device
            )
            config = dict(in_channels=x.shape[1], image_size=tuple(x.shape[2:]), num_classes=num_classes)
            ckpt = dict(config=config, state_dict=model.cpu().state_dict(), train_seconds=time.perf_counter() - t0)
            tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
            torch.save(ckpt, tmp)
            os.replace(tmp, path)
    model.to(device)
    # The id names the weights themselves: FIDs are comparable exactly when their ids are equal.
    net_id = f"lenet:{dataset_id}:e{epochs}:{weights_hash(model)}"
    net = ClassifierFeatureNet(model, net_id, from_cache=from_cache)
    if x_test is not None and y_test is not None:
        net.accuracy = accuracy(net, x_test, y_test)
    return net
