"""Datasets (digits, toys, idx/CIFAR files written here in every layout, the real MNIST copy where present)
and ClassQueues."""

from __future__ import annotations

import dataclasses
import gzip
import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets
from sklearn.datasets import load_digits

from raydrift.data import datasets as data
from raydrift.data import registry
from raydrift.data.datasets import DatasetNotFoundError, load_dataset
from raydrift.data.queues import ClassQueues

# The real MNIST (../shared/data/mnist): on this project's development and CI machines only, never a user's.
MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
_NO_MNIST = pytest.mark.skipif(
    not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"the real MNIST copy is not at {MNIST_DIR} (it is on the project's CI machines, not in a clone)",
)


def needs_real_mnist(test):
    """Marked ``shared_data`` (CI's second pass runs these beside ../shared) and skipped where it is absent."""
    return pytest.mark.shared_data(_NO_MNIST(test))


MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an idx file (gzipped if the name ends in .gz)."""
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)


def write_mnist_subset(directory: Path, n_train: int, n_test: int, suffix: str = "") -> dict[str, np.ndarray]:
    """Random 28x28 "digits" and labels as the four standard idx files in ``directory``; returns the arrays
    written, by file stem."""
    rng = np.random.default_rng(n_train * 1000 + n_test)
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = data._IDX_FILES[split]
        written[images] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        written[labels] = (np.arange(n) % 10).astype(np.uint8)  # every class present
        for stem in (images, labels):
            write_idx(directory / f"{stem}{suffix}", written[stem])
    return written


@pytest.fixture(scope="module")
def mnist_train() -> data.Dataset:
    return load_dataset("mnist", "train", MNIST_DIR)


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any torchvision download attempt fail the test."""

    def forbidden(*args, **kwargs):
        raise AssertionError("download attempted")

    for cls in ("MNIST", "FashionMNIST", "CIFAR10"):
        monkeypatch.setattr(torchvision.datasets, cls, forbidden)


# ---- digits -----------------------------------------------------------------------------------------


def test_digits_shapes_and_range() -> None:
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert (len(train), len(test)) == (1442, 355)
    assert train.x.shape == (1442, 1, 8, 8) and train.x.dtype == torch.uint8
    assert train.y.dtype == torch.int64 and train.num_classes == 10 and train.sample_shape == (1, 8, 8)
    assert int(train.x.min()) == 0 and int(train.x.max()) == 255
    batch = train.get(torch.arange(len(train)))
    assert batch.dtype == torch.float32 and batch.shape == (1442, 1, 8, 8)
    assert float(batch.min()) == -1.0 and float(batch.max()) == 1.0


def test_digits_split_is_disjoint_stratified_and_stable() -> None:
    digits = load_digits()
    x_all = np.rint(digits.images * 255 / 16).astype(np.uint8)
    # Reference rule, written as a plain loop: every fifth image of each class in file order is test.
    test_idx = [i for c in range(10) for i in np.flatnonzero(digits.target == c)[4::5]]
    train_idx = sorted(set(range(len(x_all))) - set(test_idx))
    test_idx = sorted(test_idx)
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert np.array_equal(test.x[:, 0].numpy(), x_all[test_idx])
    assert np.array_equal(train.x[:, 0].numpy(), x_all[train_idx])
    assert np.array_equal(test.y.numpy(), digits.target[test_idx])
    class_sizes = np.bincount(digits.target)
    assert torch.bincount(test.y).tolist() == (class_sizes // 5).tolist()
    assert torch.bincount(train.y).tolist() == (class_sizes - class_sizes // 5).tolist()
    # Pinned, so that a change of the rule (or of the scaling) cannot pass unnoticed.
    assert int(test.x.sum()) == 1771793 and int(train.x.sum()) == 7182008
    assert torch.equal(load_dataset("digits", "test").x, test.x)


def test_class_means_match_a_naive_loop() -> None:
    train = load_dataset("digits")
    means = train.class_means()
    assert means.shape == (10, 1, 8, 8) and means.dtype == torch.float32
    for c in range(10):
        expected = train.get((train.y == c).nonzero().flatten()).double().mean(0)
        torch.testing.assert_close(means[c].double(), expected, rtol=0, atol=1e-6)
    toy = load_dataset("toy2d", toy_size=500)
    torch.testing.assert_close(toy.class_means(), toy.x.mean(0, keepdim=True))


# ---- toys -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("toy", data.TOYS)
def test_toys_shapes_scale_and_determinism(toy: str) -> None:
    train = load_dataset("toy2d", toy=toy, toy_size=4000, seed=3)
    assert train.name == f"toy2d/{toy}" and train.num_classes == 1 and train.sample_shape == (2,)
    assert train.x.shape == (4000, 2) and train.x.dtype == torch.float32
    assert torch.equal(train.y, torch.zeros(4000, dtype=torch.int64))
    assert torch.equal(train.get(torch.arange(10)), train.x[:10])
    assert ((train.x.std(0) - 1).abs() < 0.1).all() and (train.x.mean(0).abs() < 0.35).all()
    assert torch.equal(load_dataset("toy2d", toy=toy, toy_size=4000, seed=3).x, train.x)
    assert not torch.equal(load_dataset("toy2d", toy=toy, toy_size=4000, seed=4).x, train.x)
    assert not torch.equal(load_dataset("toy2d", "test", toy=toy, toy_size=4000, seed=3).x, train.x)


def test_checkerboard_fills_only_even_squares() -> None:
    x = load_dataset("toy2d", toy="checkerboard", toy_size=4000).x / (3**0.5 / 2)
    cells = x.floor().long()
    assert ((cells[:, 0] + cells[:, 1]) % 2 == 0).all() and (x.abs() <= 2).all()


def test_unknown_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="unknown split"):
        load_dataset("digits", "val")
    with pytest.raises(ValueError, match="unknown toy"):
        load_dataset("toy2d", toy="moons")


# ---- MNIST and Fashion-MNIST ------------------------------------------------------------------------


@needs_real_mnist
def test_mnist_full_from_shared(mnist_train: data.Dataset) -> None:
    test = load_dataset("mnist", "test", MNIST_DIR)
    assert mnist_train.x.shape == (60000, 1, 28, 28) and mnist_train.x.dtype == torch.uint8
    assert test.x.shape == (10000, 1, 28, 28)
    assert torch.bincount(mnist_train.y).tolist() == MNIST_TRAIN_COUNTS
    assert int((mnist_train.y == 1).sum()) == 6742
    assert torch.bincount(test.y).tolist() == MNIST_TEST_COUNTS
    assert int(mnist_train.x.max()) == 255 and mnist_train.class_means().shape == (10, 1, 28, 28)


def test_mnist_torchvision_raw_layout(tmp_path: Path) -> None:
    written = write_mnist_subset(tmp_path / "MNIST" / "raw", 200, 50)  # uncompressed, as torchvision leaves them
    train = load_dataset("mnist", "train", tmp_path)
    assert np.array_equal(train.x[:, 0].numpy(), written["train-images-idx3-ubyte"])
    assert np.array_equal(train.y.numpy(), written["train-labels-idx1-ubyte"].astype(np.int64))
    assert train.x.shape == (200, 1, 28, 28) and len(load_dataset("mnist", "test", tmp_path)) == 50


def test_fashion_mnist_system_path_is_the_default_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_download: None
) -> None:
    # Debian's layout: the four gzipped files flat in one system directory; HOME has no cache.
    system_dir = tmp_path / "usr" / "share" / "datasets" / "fashion-mnist"
    write_mnist_subset(system_dir, 30, 20, suffix=".gz")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    info = dataclasses.replace(registry.DATASETS["fashion_mnist"], system_roots=(str(system_dir),))
    monkeypatch.setitem(registry.DATASETS, "fashion_mnist", info)
    train = load_dataset("fashion_mnist")
    assert train.name == "fashion_mnist" and train.x.shape == (30, 1, 28, 28)


def test_missing_dataset_names_searched_paths(tmp_path: Path, no_download: None) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", "train", tmp_path)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    for searched in (tmp_path, tmp_path / "MNIST" / "raw"):
        assert f"  {searched}\n" in message
    assert "train-images-idx3-ubyte[.gz]" in message and "download=True" in message
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion_mnist", "test", tmp_path)


def test_download_fetches_into_root_then_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_mnist(root: str, train: bool, download: bool) -> None:
        calls.append(root)
        write_mnist_subset(Path(root) / "MNIST" / "raw", 40, 10, suffix=".gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", fake_mnist)
    assert len(load_dataset("mnist", "test", tmp_path, download=True)) == 10
    assert len(load_dataset("mnist", "train", tmp_path, download=True)) == 40
    assert calls == [str(tmp_path)]  # the second load found the files


def test_failed_download_raises_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DatasetNotFoundError, match="network unreachable") as info:
        load_dataset("cifar10", "test", tmp_path, download=True)
    assert isinstance(info.value.__cause__, OSError)


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    bad_magic = tmp_path / "bad-magic"
    bad_magic.write_bytes(bytes([0, 0, 9, 1]) + struct.pack(">I", 3) + b"abc")
    with pytest.raises(ValueError, match="not an idx file"):
        data.read_idx(bad_magic)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 28, 28) + bytes(100))
    with pytest.raises(ValueError, match="bytes of data follow"):
        data.read_idx(truncated)


# ---- CIFAR-10 ---------------------------------------------------------------------------------------


def write_cifar(directory: Path, sizes: dict[str, int], seed: int = 0) -> dict[str, dict]:
    """Tiny batches in the exact ``cifar-10-batches-py`` pickle format; returns what was written."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    batches = {}
    for name, n in sizes.items():
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(c) for c in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"{name}_{i}.png".encode() for i in range(n)],
        }
        with open(directory / name, "wb") as f:
            pickle.dump(batch, f)
        batches[name] = batch
    return batches


def test_cifar10_loads_standard_pickles(tmp_path: Path, no_download: None) -> None:
    sizes = {f"data_batch_{i}": 3 + i for i in range(1, 6)} | {"test_batch": 6}
    batches = write_cifar(tmp_path / "cifar-10-batches-py", sizes)
    train = load_dataset("cifar10", "train", tmp_path)
    assert train.x.shape == (sum(range(4, 9)), 3, 32, 32) and train.sample_shape == (3, 32, 32)
    first = batches["data_batch_1"]
    # Each row is the red, green, then blue 32x32 plane.
    assert np.array_equal(train.x[0, 0].numpy(), first[b"data"][0, :1024].reshape(32, 32))
    assert np.array_equal(train.x[0, 2].numpy(), first[b"data"][0, 2048:].reshape(32, 32))
    labels = [c for i in range(1, 6) for c in batches[f"data_batch_{i}"][b"labels"]]
    assert train.y.tolist() == labels
    test = load_dataset("cifar10", "test", tmp_path / "cifar-10-batches-py")  # root = the batch folder
    assert len(test) == 6 and test.y.tolist() == batches["test_batch"][b"labels"]


def test_cifar10_missing_batch_is_not_found(tmp_path: Path, no_download: None) -> None:
    write_cifar(tmp_path / "cifar-10-batches-py", {f"data_batch_{i}": 2 for i in range(1, 5)})
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py"):
        load_dataset("cifar10", "train", tmp_path)


# ---- ClassQueues ------------------------------------------------------------------------------------


def uneven_labels(num_classes: int = 5, seed: int = 0) -> torch.Tensor:
    """Shuffled labels with class c holding 7 + 3c samples."""
    labels = torch.repeat_interleave(torch.arange(num_classes), 7 + 3 * torch.arange(num_classes))
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


def assert_cycles(stream: torch.Tensor, pool: torch.Tensor) -> None:
    """Every full cycle of ``stream`` is a permutation of ``pool``; the partial last one has no repeats."""
    cycles = torch.split(stream, len(pool))
    for cycle in cycles[:-1]:
        assert torch.equal(cycle.sort().values, pool.sort().values)
    assert len(cycles[-1].unique()) == len(cycles[-1]) and torch.isin(cycles[-1], pool).all()


def test_queues_cycle_through_each_class_without_repeats() -> None:
    labels = uneven_labels()
    queues = ClassQueues(labels, 5, seed=1)
    draws = [queues.sample(torch.tensor([3, 0, 4, 1, 2]), 4) for _ in range(20)]
    assert all(d.shape == (5, 4) and d.dtype == torch.int64 for d in draws)
    for row, c in enumerate([3, 0, 4, 1, 2]):
        stream = torch.cat([d[row] for d in draws])
        assert (labels[stream] == c).all()
        assert_cycles(stream, (labels == c).nonzero().flatten())


def test_queues_repeated_class_in_one_call_and_draws_beyond_a_class() -> None:
    labels = uneven_labels()
    pool = (labels == 2).nonzero().flatten()  # 13 samples
    queues = ClassQueues(labels, 5, seed=2)
    rows = queues.sample(torch.tensor([2, 2]), 6)
    assert len(rows.flatten().unique()) == 12  # one queue for both rows: no index shared
    assert_cycles(torch.cat([rows.flatten(), queues.sample(torch.tensor([2]), 33).flatten()]), pool)


def test_sample_any_cycles_through_the_dataset() -> None:
    labels = uneven_labels()
    queues = ClassQueues(labels, 5, seed=3)
    stream = torch.cat([queues.sample_any(16) for _ in range(12)])
    assert_cycles(stream, torch.arange(len(labels)))


def test_queues_seeding() -> None:
    labels = uneven_labels()
    classes = torch.arange(5)
    a, b, c = (ClassQueues(labels, 5, seed=s) for s in (7, 7, 8))
    first = a.sample(classes, 5)
    assert torch.equal(first, b.sample(classes, 5)) and not torch.equal(first, c.sample(classes, 5))
    assert torch.equal(a.sample_any(9), b.sample_any(9))
    # sample_any has its own stream: drawing it does not change the positives.
    b.sample_any(20)
    assert torch.equal(a.sample(classes, 5), b.sample(classes, 5))


def test_queues_resume_exactly() -> None:
    labels = uneven_labels()
    classes = torch.tensor([1, 4, 4, 0])
    queues = ClassQueues(labels, 5, seed=4)
    for _ in range(7):
        queues.sample(classes, 5)
        queues.sample_any(11)
    buffer = io.BytesIO()
    torch.save(queues.state_dict(), buffer)
    expected = [(queues.sample(classes, 5), queues.sample_any(11)) for _ in range(10)]
    resumed = ClassQueues(labels, 5, seed=99)
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer))
    for want_pos, want_any in expected:
        assert torch.equal(resumed.sample(classes, 5), want_pos)
        assert torch.equal(resumed.sample_any(11), want_any)


def test_queues_reject_bad_input() -> None:
    labels = uneven_labels()
    queues = ClassQueues(labels, 5, seed=0)
    queues.sample(torch.arange(5), 3)
    with pytest.raises(ValueError, match="classes outside"):
        queues.sample(torch.tensor([5]), 3)
    with pytest.raises(ValueError, match="labels outside"):
        ClassQueues(labels, 4, seed=0)
    with pytest.raises(ValueError, match="does not match"):
        ClassQueues(uneven_labels(seed=1), 5, seed=0).load_state_dict(queues.state_dict())
    with pytest.raises(ValueError, match="empty class"):
        ClassQueues(labels, 6, seed=0).sample(torch.tensor([5]), 1)
