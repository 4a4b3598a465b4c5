"""One :class:`DatasetInfo` per dataset: everything the rest of raydrift needs to know about it.

Adding a dataset is one entry here (plus a reader in :mod:`raydrift.data.datasets` if its file format is
new) and its test; the config's ``data.dataset`` choices, the loaders, the FID classifier's recipe, the
number of classes a study plans with and the CLI's listings all read this table. Importing it costs
nothing (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DatasetInfo:
    """What raydrift knows about one dataset.

    ``format`` names the reader: ``toy`` (generated 2-D points), ``sklearn_digits`` (embedded), ``idx``
    (the four MNIST-style idx files, gzipped or not) or ``cifar`` (``cifar-10-batches-py`` pickles).
    """

    name: str
    num_classes: int
    sample_shape: tuple[int, ...]  # (C, H, W) for images, (2,) for toys
    format: str
    description: str
    classifier_recipe: tuple[int, int] = (5, 128)  # (epochs, batch size) of the FID LeNet
    layouts: tuple[str, ...] = ("",)  # subfolders of a root that may hold the files (torchvision's too)
    system_roots: tuple[str, ...] = ()  # searched after the default root when no root is given
    torchvision_class: str = ""  # torchvision.datasets class that downloads it ("" = no download)
    how_to_get: str = ""
    needs_files: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "needs_files", self.format in ("idx", "cifar"))

    @property
    def is_image(self) -> bool:
        return len(self.sample_shape) == 3


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("toy2d", 1, (2,), "toy", "2-D toy distributions (checkerboard, swiss roll, 8 Gaussians)"),
        DatasetInfo(
            "digits",
            10,
            (1, 8, 8),
            "sklearn_digits",
            "scikit-learn's 8x8 handwritten digits, embedded (no download)",
            classifier_recipe=(30, 32),  # tiny: more epochs at a small batch
        ),
        DatasetInfo(
            "mnist",
            10,
            (1, 28, 28),
            "idx",
            "MNIST 28x28, the four standard idx files",
            classifier_recipe=(2, 128),
            layouts=("", "MNIST/raw", "mnist"),
            torchvision_class="MNIST",
            how_to_get="To download (needs internet) pass download=True (torchvision.datasets.MNIST), or fetch "
            "the four .gz files from https://ossci-datasets.s3.amazonaws.com/mnist/.",
        ),
        DatasetInfo(
            "fashion_mnist",
            10,
            (1, 28, 28),
            "idx",
            "Fashion-MNIST 28x28, the four standard idx files",
            classifier_recipe=(3, 128),
            layouts=("", "FashionMNIST/raw", "fashion_mnist", "fashion-mnist"),
            # Debian's `dataset-fashion-mnist` package installs the four gzipped idx files here.
            system_roots=("/usr/share/datasets/fashion-mnist",),
            torchvision_class="FashionMNIST",
            how_to_get="On Debian/Ubuntu: apt-get install dataset-fashion-mnist (installs them in "
            "/usr/share/datasets/fashion-mnist, searched when no root is given). To download (needs internet) "
            "pass download=True (torchvision.datasets.FashionMNIST), or fetch the four .gz files from "
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/.",
        ),
        DatasetInfo(
            "cifar10",
            10,
            (3, 32, 32),
            "cifar",
            "CIFAR-10 32x32, the cifar-10-batches-py pickles",
            classifier_recipe=(10, 128),
            layouts=("", "cifar-10-batches-py", "cifar10"),
            torchvision_class="CIFAR10",
            how_to_get="To download (needs internet) pass download=True (torchvision.datasets.CIFAR10), or unpack "
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz into one of them.",
        ),
    )
}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[name]
