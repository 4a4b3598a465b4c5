"""One registry per extensible thing: the config's choices are exactly the registries' entries, every entry
is tested, and a consumer that needs a dataset's facts reads them from the dataset registry."""

import typing

from raydrift.config import schema
from raydrift.data.registry import DATASETS
from raydrift.method.features import STATS
from raydrift.method.kernels import KERNELS, NORMALIZATIONS
from raydrift.nets.encoders import ENCODERS


def choices(cls: type, name: str) -> tuple:
    tp = typing.get_type_hints(cls)[name]
    if typing.get_origin(tp) is tuple:
        tp = typing.get_args(tp)[0]
    assert typing.get_origin(tp) is typing.Literal, f"{cls.__name__}.{name} is not a Literal"
    return typing.get_args(tp)


def test_config_literals_are_the_registries():
    assert choices(schema.DataConfig, "dataset") == tuple(DATASETS)
    assert choices(schema.DriftConfig, "kernel") == tuple(KERNELS)
    assert choices(schema.DriftConfig, "normalization") == tuple(NORMALIZATIONS)
    assert choices(schema.DriftConfig, "encoder") == tuple(ENCODERS)
    assert choices(schema.DriftConfig, "feature_stats") == STATS


def test_every_kernel_and_normalization_is_checked_against_the_naive_loop():
    from test_drift import VARIANTS  # tests/ is on sys.path (pytest prepends it)

    assert {v[0] for v in VARIANTS} == set(KERNELS)
    assert {v[1] for v in VARIANTS} == set(NORMALIZATIONS)


def test_every_dataset_entry_is_consistent():

    for name, info in DATASETS.items():
        assert info.name == name and info.num_classes >= 1
        assert info.format in ("toy", "sklearn_digits", "idx", "cifar")
        assert info.is_image == (info.format != "toy")
        assert not info.needs_files or (info.how_to_get and info.layouts)
        epochs, batch = info.classifier_recipe
        assert epochs >= 1 and batch >= 1


def test_embedded_datasets_load_with_their_registered_shape_and_classes():
    from raydrift.data.datasets import load_dataset

    for name in ("toy2d", "digits"):
        data = load_dataset(name, "test", toy_size=64)
        info = DATASETS[name]
        assert data.sample_shape == info.sample_shape and data.num_classes == info.num_classes
