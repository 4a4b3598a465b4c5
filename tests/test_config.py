"""The typed config tree: overrides, validation messages, JSON round trip, presets."""

import pytest

from raydrift.config import Config, ConfigError, apply_overrides, describe_keys, from_dict, to_dict
from raydrift.config.presets import PRESETS, get_preset


def test_overrides_parse_by_type():
    cfg = apply_overrides(
        Config(),
        [
            "drift.kernel=gaussian",
            "drift.temperatures=0.05,0.2",
            "optim.lr=3e-4",
            "train.steps=20",
            "drift.compile=false",
            "optim.betas=(0.8, 0.9)",
        ],
    )
    assert cfg.drift.kernel == "gaussian"
    assert cfg.drift.temperatures == (0.05, 0.2)
    assert cfg.optim.lr == 3e-4 and cfg.train.steps == 20 and cfg.drift.compile is False
    assert cfg.optim.betas == (0.8, 0.9)


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match=r"unknown config key 'drift.kernal'.*Did you mean drift.kernel"):
        apply_overrides(Config(), ["drift.kernal=gaussian"])


@pytest.mark.parametrize(
    "item,match",
    [
        ("drift.kernel=cauchy", "drift.kernel must be one of laplace, gaussian; got 'cauchy'"),
        ("train.steps=ten", "train.steps must be an integer"),
        ("train.steps=1.5", "train.steps must be an integer"),
        ("train.steps=0", "train.steps must be >= 1"),
        ("drift.temperatures=", "drift.temperatures must be a non-empty tuple"),
        ("drift.temperatures=0.1,-2", "drift.temperatures must be a non-empty tuple of numbers > 0"),
        ("drift.compile=maybe", "drift.compile must be true or false"),
        ("model.heads=3", "model.dim .* must be divisible by model.heads"),
        ("drift.n_neg=1", "drift.n_neg must be >= 2"),
        ("kernel gaussian", "must look like key=value"),
    ],
)
def test_bad_values_are_clear(item, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(Config(), [item])


def test_json_round_trip_and_strictness():
    cfg = apply_overrides(get_preset("mnist"), ["drift.temperatures=0.1", "eval.reference=test"])
    assert from_dict(to_dict(cfg)) == cfg
    data = to_dict(cfg)
    data["drift"]["bogus"] = 1
    with pytest.raises(ConfigError, match="bogus"):
        from_dict(data)


def test_every_key_is_documented_and_presets_are_valid():
    keys = describe_keys()
    assert len(keys) > 40
    undocumented = [k for k, _, doc in keys if not doc]
    assert undocumented == []
    for name in PRESETS:
        cfg = get_preset(name)
        assert cfg.preset == name and from_dict(to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="unknown preset 'cifar'"):
        get_preset("cifar")


def test_toy_preset_consistency_is_checked():
    with pytest.raises(ConfigError, match="toy2d needs model.arch=mlp"):
        apply_overrides(get_preset("toy2d"), ["model.arch=dit"])


def test_indexed_tuple_items():
    cfg = apply_overrides(Config(), {"drift.temperatures[0]": 0.01, "drift.temperatures[2]": "0.5"})
    assert cfg.drift.temperatures == (0.01, 0.05, 0.5)
    with pytest.raises(ConfigError, match="index out of range"):
        apply_overrides(Config(), ["drift.temperatures[3]=0.1"])
    with pytest.raises(ConfigError, match="only tuple fields take an index"):
        apply_overrides(Config(), ["drift.kernel[0]=gaussian"])
