"""Datasets in memory (the per-class queues that hand out positives are in :mod:`raydrift.queues`).

Images stay in memory as uint8 ``[N, C, H, W]`` and are converted per batch to float32 in ``[-1, 1]``
(``Dataset.get``); 2-D toys are stored as float32 ``[N, 2]`` and returned as stored. ``load_dataset``
knows five datasets:

- ``toy2d``: checkerboard, swiss roll or a mixture of 8 Gaussians on a circle, generated from ``seed``
  (train and test from different seeds derived from it), about zero mean and unit std per coordinate;
  one class (unconditional).
- ``digits`` (the embedded default; no download): scikit-learn's 8x8 handwritten digits, 0..16 mapped to
  uint8 ``round(v * 255 / 16)``. Fixed stratified split with no random numbers, so no library version can
  move it: within each class, in file order, every fifth image (positions 4, 9, 14, ...) is test, the
  rest train: ``floor(n_c / 5)`` test images per class, 355 test and 1442 train in all.
- ``mnist``, ``fashion_mnist``: the four standard idx files, gzipped or not, parsed here directly.
- ``cifar10``: the standard ``cifar-10-batches-py`` pickle batches.

Files are searched under ``root`` (default ``~/.cache/raydrift/data/<name>``, then the dataset's
``system_roots``) in the dataset's ``layouts``: flat, torchvision's, and a ``<name>`` subfolder (both in
:mod:`raydrift.data.registry`, with the number of classes and the shape).
``download=True`` fetches a missing dataset with torchvision; otherwise a missing dataset raises
``DatasetNotFoundError`` saying where it looked and how to get the files.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from raydrift.errors import UserError

from .images import to_float
from .registry import dataset_info

if TYPE_CHECKING:
    from raydrift.config.schema import DataConfig

TOYS: tuple[str, ...] = ("checkerboard", "swiss_roll", "gaussian_mixture")
SPLITS: tuple[str, ...] = ("train", "test")

DEFAULT_ROOT = Path("~/.cache/raydrift/data")
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_DIGITS_TEST_EVERY = 5


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where ``load_dataset`` looked (and were not, or could not be, downloaded)."""


class DatasetError(UserError, ValueError):
    """A dataset file that is there but cannot be used: cut short, not the format it should be, or not
    matching its partner file. The message names the file."""


_REFETCH = "get a fresh copy (delete it and rerun with --set data.download=true, or copy it again from its source)"


@dataclass
class Dataset:
    """One split of a dataset, held in memory.

    ``x``: uint8 ``[N, C, H, W]`` images or float32 ``[N, 2]`` toy points; ``y``: int64 ``[N]`` labels in
    ``[0, num_classes)`` (all 0 for toys, which have one class).
    """

    name: str
    split: str
    x: torch.Tensor
    y: torch.Tensor
    num_classes: int

    def __post_init__(self) -> None:
        if self.x.dtype not in (torch.uint8, torch.float32):
            raise ValueError(f"{self.name}: x must be uint8 images or float32 points, got {self.x.dtype}")
        if self.y.dtype != torch.int64 or self.y.shape != (len(self.x),):
            raise ValueError(f"{self.name}: y must be int64 [{len(self.x)}], got {self.y.dtype} {self.y.shape}")
        if len(self.y) and not 0 <= int(self.y.min()) <= int(self.y.max()) < self.num_classes:
            raise ValueError(f"{self.name}: labels outside [0, {self.num_classes})")

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` for images, ``(2,)`` for toys."""
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return len(self.x)

    def get(self, idx: torch.Tensor) -> torch.Tensor:
        """Float32 samples ``[*idx.shape, *sample_shape]``: images scaled to ``[-1, 1]``, toys as stored."""
        return to_float(self.x[idx])

    def class_means(self) -> torch.Tensor:
        """Per-class mean sample, float32 ``[num_classes, *sample_shape]`` in the scale of ``get``."""
        counts = torch.bincount(self.y, minlength=self.num_classes)
        empty = (counts == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"{self.name}/{self.split}: no samples of classes {empty}")
        # float64 sums per class: exact for uint8, and no float copy of the whole dataset at once.
        sums = torch.stack([self.x[self.y == c].sum(0, dtype=torch.float64) for c in range(self.num_classes)])
        means = sums / counts.view(-1, *[1] * len(self.sample_shape))
        return means.float() if self.x.dtype != torch.uint8 else (means / 127.5 - 1.0).float()


def load_dataset(
    name: str,
    split: str = "train",
    root: str | os.PathLike | None = None,
    *,
    download: bool = False,
    toy: str = "checkerboard",
    toy_size: int = 20000,
    seed: int = 0,
) -> Dataset:
    """Load one split of ``name`` (see the module docstring for each dataset).

    ``root``: the directory holding the dataset's files (default ``~/.cache/raydrift/data/<name>``); ignored
    by ``toy2d`` and ``digits``. ``toy``, ``toy_size`` and ``seed`` apply to ``toy2d`` only.
    """
    info = dataset_info(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    if info.format == "toy":
        x = make_toy(toy, toy_size, _split_seed(seed, split))
        return Dataset(f"{name}/{toy}", split, x, torch.zeros(toy_size, dtype=torch.int64), info.num_classes)
    if info.format == "sklearn_digits":
        x, y = _load_digits(split)
    elif info.format == "cifar":
        x, y = _read_cifar(_find_files(name, split, root, download, _CIFAR_FILES[split], ("",)))
    else:
        x, y = _read_idx_pair(_find_files(name, split, root, download, _IDX_FILES[split], ("", ".gz")))
    return Dataset(name, split, x, y, info.num_classes)


def load_split(data: DataConfig, split: str, seed: int = 0) -> Dataset:
    """One split of the dataset a config's ``data`` section names (``seed``: the toy stream's base seed)."""
    return load_dataset(
        data.dataset,
        split,
        data.root or None,
        download=data.download,
        toy=data.toy,
        toy_size=data.toy_size,
        seed=seed,
    )


# ---- toys -------------------------------------------------------------------------------------------


def _split_seed(seed: int, split: str) -> int:
    """Seed of one split's generator, derived from (seed, split) so train and test never share a stream."""
    return int(np.random.SeedSequence([seed, SPLITS.index(split)]).generate_state(1)[0])


def make_toy(toy: str, n: int, seed: int) -> torch.Tensor:
    """``n`` points of a 2-D toy, float32 ``[n, 2]``, about zero mean and unit std per coordinate."""
    g = torch.Generator().manual_seed(seed)
    if toy == "checkerboard":
        # Uniform on the 8 "even" unit squares of [-2, 2)^2; each marginal is uniform on [-2, 2), whose std
        # is 2 / sqrt(3), hence the factor.
        x1 = torch.rand(n, generator=g) * 4 - 2
        x2 = torch.randint(0, 2, (n,), generator=g) * 2 + torch.rand(n, generator=g) - 2
        x2 = x2 + x1.floor().remainder(2)
        return torch.stack([x1, x2], 1) * (math.sqrt(3) / 2)
    if toy == "swiss_roll":
        # sklearn's roll (t in [1.5 pi, 4.5 pi]) in the plane; dividing by 7 gives std ~(0.95, 1.0).
        t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
        x = torch.stack([t * t.cos(), t * t.sin()], 1) + 0.5 * torch.randn(n, 2, generator=g)
        return x / 7
    if toy == "gaussian_mixture":
        # 8 equal modes of std s on a circle of radius r: per-coordinate variance r^2 / 2 + s^2 = 1.
        s = 0.1
        r = math.sqrt(2 * (1 - s**2))
        angle = torch.randint(0, 8, (n,), generator=g) * (2 * math.pi / 8)
        return r * torch.stack([angle.cos(), angle.sin()], 1) + s * torch.randn(n, 2, generator=g)
    raise ValueError(f"unknown toy {toy!r}; choose from {TOYS}")


# ---- digits -----------------------------------------------------------------------------------------


def digits_test_mask(y: np.ndarray) -> np.ndarray:
    """The fixed digits split: bool ``[N]``, True for every fifth image of each class in file order."""
    order = np.argsort(y, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(y)) - np.searchsorted(y[order], y[order])
    return rank % _DIGITS_TEST_EVERY == _DIGITS_TEST_EVERY - 1


def _load_digits(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits: uint8 ``[N, 1, 8, 8]`` and int64 ``[N]`` for one split."""
    from sklearn.datasets import load_digits  # imported here: sklearn is slow to import and rarely needed

    digits = load_digits()
    x = np.rint(digits.images * (255 / 16)).astype(np.uint8)[:, None]
    y = digits.target.astype(np.int64)
    keep = digits_test_mask(y) == (split == "test")
    return torch.from_numpy(x[keep]), torch.from_numpy(y[keep])


# ---- files: finding, downloading, parsing -----------------------------------------------------------


def _search_roots(name: str, root: str | os.PathLike | None) -> list[Path]:
    """The roots to search, in order; the first one is where a download goes."""
    if root is not None:
        return [Path(root).expanduser()]
    return [(DEFAULT_ROOT / name).expanduser(), *map(Path, dataset_info(name).system_roots)]


def _locate(dirs: Sequence[Path], stems: Sequence[str], suffixes: Sequence[str]) -> list[Path] | None:
    """The files ``stems`` (each with the first suffix that exists) from the first directory holding all."""
    for d in dirs:
        found = [next((d / (s + x) for x in suffixes if (d / (s + x)).is_file()), None) for s in stems]
        if all(found):
            return found
    return None


def _find_files(
    name: str,
    split: str,
    root: str | os.PathLike | None,
    download: bool,
    stems: Sequence[str],
    suffixes: Sequence[str],
) -> list[Path]:
    """Paths of one split's files, downloading them first if missing and ``download`` is set."""
    roots = _search_roots(name, root)
    dirs = [r / sub for r in roots for sub in dataset_info(name).layouts]
    found = _locate(dirs, stems, suffixes)
    if found is None and download:
        try:
            _download(name, roots[0])
        except Exception as err:  # any failure (network, disk, checksum) means "not found"
            raise _not_found(name, split, dirs, stems, suffixes, f"Download into {roots[0]} failed: {err!r}.") from err
        found = _locate(dirs, stems, suffixes)
    if found is None:
        raise _not_found(name, split, dirs, stems, suffixes)
    return found


def _download(name: str, root: Path) -> None:
    """Fetch ``name`` into ``root`` with torchvision (needs internet), in one of the dataset's ``layouts``."""
    import torchvision.datasets  # imported here: only downloads need it, and it is slow to import

    getattr(torchvision.datasets, dataset_info(name).torchvision_class)(root=str(root), train=True, download=True)


def _not_found(
    name: str,
    split: str,
    dirs: Sequence[Path],
    stems: Sequence[str],
    suffixes: Sequence[str],
    reason: str = "",
) -> DatasetNotFoundError:
    gz = "[.gz]" if ".gz" in suffixes else ""
    files = ", ".join(s + gz for s in stems)
    searched = "\n".join(f"  {d}" for d in dirs)
    return DatasetNotFoundError(
        f"{name} ({split} split) not found: no directory holds all of {files}. Searched:\n{searched}\n"
        f"{reason + ' ' if reason else ''}Put the files in one of these directories, or point data.root "
        f"(load_dataset(root=...)) at a directory holding them. {dataset_info(name).how_to_get}"
    )


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An idx file of unsigned bytes (gzipped if the name ends in ``.gz``) as a uint8 array of its dims."""
    path = Path(path)
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = bytearray(f.read())  # bytearray: a writable buffer, so torch.from_numpy needs no copy
    except (EOFError, OSError, zlib.error) as err:  # a cut .gz ends in EOFError, random bytes in BadGzipFile
        raise DatasetError(f"{path} cannot be read ({type(err).__name__}: {err}): it is damaged; {_REFETCH}") from None
    # Magic: two zero bytes, the type code (0x08 = unsigned byte), the number of dimensions.
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise DatasetError(f"{path}: not an idx file of unsigned bytes (magic {bytes(raw[:4]).hex()}); {_REFETCH}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", raw[4:header]) if len(raw) >= header else ()
    data = np.frombuffer(raw, dtype=np.uint8, offset=min(header, len(raw)))
    if len(dims) != ndim or data.size != math.prod(dims):
        raise DatasetError(
            f"{path}: header says {ndim} dims {dims}, but {data.size} bytes of data follow (cut short?); {_REFETCH}"
        )
    return data.reshape(dims)


def _read_idx_pair(paths: Sequence[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) idx files -> uint8 ``[N, 1, H, W]`` and int64 ``[N]``."""
    x, y = read_idx(paths[0]), read_idx(paths[1])
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise DatasetError(
            f"{paths[0]}, {paths[1]}: expected images [N, H, W] and labels [N] of the same N, got {x.shape} and "
            f"{y.shape}; the two files are not a pair (one of them is from another dataset or split, or damaged): "
            "get fresh copies of both"
        )
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One ``cifar-10-batches-py`` pickle -> uint8 ``[n, 3, 32, 32]`` and int64 ``[n]``.

    Unpickling runs code from the file: load only batches from a trusted source, as torchvision does.
    """
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise ValueError(f"{path}: expected data [n, 3072] and labels [n], got {data.shape}, {labels.shape}")
    # Rows hold the red, green, then blue 32x32 planes, row-major: exactly [3, 32, 32].
    return data.reshape(-1, 3, 32, 32), labels


def _read_cifar(paths: Sequence[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    batches = [read_cifar_batch(p) for p in paths]
    return (
        torch.from_numpy(np.concatenate([b[0] for b in batches])),
        torch.from_numpy(np.concatenate([b[1] for b in batches])),
    )
