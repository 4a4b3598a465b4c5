"""Configuration: the typed schema of a run, overrides and the JSON round trip, and the named presets.

Imports no torch (the CLI reads it on every command) and nothing above the method/data registries."""

from .overrides import apply_overrides, describe_keys, flat_keys, from_dict, load_config, split_index, to_dict
from .presets import PRESETS, get_preset
from .schema import (
    Config,
    ConfigError,
    DataConfig,
    DriftConfig,
    EvalConfig,
    ModelConfig,
    OptimConfig,
    ScalingConfig,
    TrainConfig,
    WandbConfig,
)

__all__ = [
    "Config",
    "ConfigError",
    "DataConfig",
    "DriftConfig",
    "EvalConfig",
    "ModelConfig",
    "OptimConfig",
    "ScalingConfig",
    "TrainConfig",
    "WandbConfig",
    "PRESETS",
    "apply_overrides",
    "describe_keys",
    "flat_keys",
    "from_dict",
    "get_preset",
    "load_config",
    "split_index",
    "to_dict",
]
