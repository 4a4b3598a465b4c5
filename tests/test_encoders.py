"""The encoder registry: every encoder with random weights (keys, shapes, frozen, input handling), weights
files (round trip, wrong file), the errors for missing files, config wiring, import isolation."""

import subprocess
import sys
import typing

import pytest
import torch

from raydrift.config import ConfigError, DriftConfig, apply_overrides
from raydrift.config.presets import get_preset
from raydrift.method.features import FeatureObjective
from raydrift.nets.encoders import ENCODERS, IMAGENET_MEAN, IMAGENET_STD, EncoderWeightsError, build_encoder
from raydrift.nets.mae import MAEArch, MAEEncoderNet, save_mae

# Feature maps of a 28x28 grayscale batch with each encoder's default input size.
EXPECTED = {
    "resnet18": {"layer1": (64, 16), "layer2": (128, 8), "layer3": (256, 4), "layer4": (512, 2)},
    "resnet50": {"layer1": (256, 16), "layer2": (512, 8), "layer3": (1024, 4), "layer4": (2048, 2)},
    "convnextv2": {"stages.0": (40, 16), "stages.1": (80, 8), "stages.2": (160, 4), "stages.3": (320, 2)},
    "dinov2": {f"blocks.{i}": (384, 8) for i in (2, 5, 8, 11)},
    "mae": {"stages.0": (32, 14), "stages.1": (64, 7), "stages.2": (128, 4), "stages.3": (256, 2)},
}


@pytest.fixture(scope="module")
def encoders():
    torch.manual_seed(0)
    return {name: build_encoder(name, random_init=True, in_channels=1) for name in ENCODERS}


def test_registry_matches_the_config_choices():
    choices = typing.get_args(typing.get_type_hints(DriftConfig)["encoder"])
    assert set(choices) == set(ENCODERS) == set(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_feature_maps_and_feature_sets_of_every_encoder(encoders, name):
    enc = encoders[name]
    maps = enc(torch.rand(2, 1, 28, 28) * 2 - 1)
    assert {k: (v.shape[1], v.shape[2]) for k, v in maps.items()} == EXPECTED[name]
    assert all(v.shape[0] == 2 and v.shape[2] == v.shape[3] for v in maps.values())
    assert not any(p.requires_grad for p in enc.parameters())
    assert not enc.train().training  # stays in eval mode

    obj = FeatureObjective(DriftConfig(space="feature", encoder=name), enc)
    sets = obj.feature_sets(torch.rand(6, 1, 28, 28) * 2 - 1)
    expected = {"pixel": (1, 784), "rms": (1, 1)}
    for layer, (c, s) in EXPECTED[name].items():
        expected |= {f"{layer}/loc": (s * s, c), f"{layer}/mean": (1, c), f"{layer}/std": (1, c)}
        expected |= {f"{layer}/mean2": ((s // 2) ** 2, c), f"{layer}/std2": ((s // 2) ** 2, c)}
        if s >= 4:
            expected |= {f"{layer}/mean4": ((s // 4) ** 2, c), f"{layer}/std4": ((s // 4) ** 2, c)}
    assert {k: tuple(v.shape[1:]) for k, v in sets.items()} == expected
    assert all(v.shape[0] == 6 and v.dtype == torch.float32 for v in sets.values())


def test_rgb_input_handling(encoders):
    enc = encoders["resnet18"]
    x = torch.full((1, 1, 28, 28), -1.0)
    pre = enc.preprocess(x)
    assert pre.shape == (1, 3, 64, 64)
    expected = -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)  # black in ImageNet units
    torch.testing.assert_close(pre[0, :, 0, 0], expected)
    rgb = torch.rand(2, 3, 32, 32) * 2 - 1
    assert enc.preprocess(rgb).shape == (2, 3, 64, 64)
    mae = encoders["mae"]
    torch.testing.assert_close(mae.preprocess(x), x)  # trained on [-1, 1]: no resize, no normalisation


def test_layer_selection_and_input_size():
    enc = build_encoder("resnet18", random_init=True, layers=("layer2",), input_size=32)
    assert {k: tuple(v.shape) for k, v in enc(torch.zeros(1, 3, 32, 32)).items()} == {"layer2": (1, 128, 4, 4)}
    with pytest.raises(ValueError, match="no layers"):
        build_encoder("resnet18", random_init=True, layers=("layer9",))
    with pytest.raises(ValueError, match="unknown encoder"):
        build_encoder("vgg", random_init=True)


def _same_outputs(a, b, x):
    out_a, out_b = a(x), b(x)
    assert list(out_a) == list(out_b)
    for k in out_a:
        torch.testing.assert_close(out_a[k], out_b[k], rtol=0, atol=0)


def test_resnet_weights_file_round_trip(tmp_path):
    import torchvision

    torch.manual_seed(1)
    net = torchvision.models.resnet18(weights=None)  # saved below in torchvision's layout, fc included
    net.eval()
    for m in net.modules():  # non-trivial BatchNorm statistics, so folding them into the convs is tested
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    torch.save(net.state_dict(), tmp_path / "resnet18.pth")
    enc = build_encoder("resnet18", tmp_path / "resnet18.pth")
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    h = net.maxpool(net.relu(net.bn1(net.conv1(enc.preprocess(x)))))
    maps = enc(x)
    for layer in ("layer1", "layer2", "layer3", "layer4"):
        h = getattr(net, layer)(h)
        torch.testing.assert_close(maps[layer], h, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="does not hold resnet50"):
        build_encoder("resnet50", tmp_path / "resnet18.pth")


@pytest.mark.parametrize("name", ["convnextv2", "dinov2"])
def test_timm_weights_file_round_trip(tmp_path, name):
    torch.manual_seed(2)
    a = build_encoder(name, random_init=True)
    path = tmp_path / f"{name}.pth"
    torch.save(a.net.state_dict(), path)
    b = build_encoder(name, path)
    _same_outputs(a, b, torch.rand(2, 3, 32, 32) * 2 - 1)


def test_mae_weights_file_round_trip_and_channel_check(tmp_path):
    torch.manual_seed(3)
    net = MAEEncoderNet(MAEArch(in_channels=1, widths=(8, 16), groups=4))
    path = save_mae(tmp_path / "mae.pt", net, {"dataset": "mnist"})
    enc = build_encoder("mae", path, in_channels=1)
    assert enc.meta["dataset"] == "mnist" and enc.layers == ("stages.0", "stages.1")
    x = torch.rand(2, 1, 28, 28)
    for k, v in net(x).items():  # not bit-identical: the encoder convolves in channels-last layout
        torch.testing.assert_close(enc(x)[k], v, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="3"):
        build_encoder("mae", path, in_channels=3)


@pytest.mark.parametrize(
    "name, hint",
    [
        ("resnet18", "https://download.pytorch.org/models/resnet18"),
        ("resnet50", "https://download.pytorch.org/models/resnet50"),
        ("convnextv2", "huggingface.co/timm/convnextv2_atto.fcmae"),
        ("dinov2", "huggingface.co/timm/vit_small_patch14_dinov2.lvd142m"),
        ("mae", "raydrift encoder train --dataset mnist --out PATH"),
    ],
)
def test_missing_weights_file_is_a_clear_error(tmp_path, name, hint):
    missing = tmp_path / "nowhere" / "weights.pth"
    with pytest.raises(EncoderWeightsError) as err:
        build_encoder(name, missing, dataset="mnist")
    assert str(missing) in str(err.value) and hint in str(err.value)
    assert "drift.encoder_weights" in str(err.value)


def test_failed_download_is_a_clear_error(monkeypatch):
    """Offline, the usual download fails; the error says which file to fetch where (no network used here)."""
    import timm
    import torchvision.models as tvm

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tvm.ResNet18_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    with pytest.raises(EncoderWeightsError, match="resnet18-f37072fd.pth") as err:
        build_encoder("resnet18")
    assert "name resolution" in str(err.value) and "drift.encoder_weights" in str(err.value)

    create = timm.create_model
    monkeypatch.setattr(timm, "create_model", lambda *a, **kw: offline() if kw.get("pretrained") else create(*a, **kw))
    with pytest.raises(EncoderWeightsError, match="huggingface.co/timm/convnextv2_atto.fcmae"):
        build_encoder("convnextv2")


def test_mae_needs_a_weights_file():
    with pytest.raises(EncoderWeightsError, match="raydrift encoder train --dataset digits"):
        build_encoder("mae", "", dataset="digits")


def test_config_fields_and_validation():
    cfg = apply_overrides(
        get_preset("mnist"),
        [
            "drift.space=feature",
            "drift.encoder=resnet18",
            "drift.encoder_layers=layer1,layer2",
            "drift.feature_stats=loc,global",
            "drift.encoder_input_size=32",
            "drift.feature_pixel_key=false",
        ],
    )
    d = cfg.drift
    assert (d.encoder, d.encoder_layers, d.feature_stats, d.encoder_input_size) == (
        "resnet18",
        ("layer1", "layer2"),
        ("loc", "global"),
        32,
    )
    with pytest.raises(ConfigError, match="feature_stats"):
        DriftConfig(feature_stats=("loc", "patch3"))
    with pytest.raises(ConfigError, match="encoder"):
        apply_overrides(get_preset("mnist"), ["drift.encoder=vgg"])
    with pytest.raises(ConfigError, match="at least one key"):
        DriftConfig(space="feature", feature_stats=(), feature_pixel_key=False, feature_rms_key=False)
    with pytest.raises(ConfigError, match="encoder_input_size"):
        DriftConfig(encoder_input_size=-1)


def test_core_modules_import_no_infrastructure():
    """The core (drift math, models, feature sets, metric math, data, the Ray-free loop) imports no Ray, W&B,
    click or polars."""
    core = [
        "method.drift", "method.objective", "method.features", "nets.generators", "nets.encoders", "nets.mae",
        "data.datasets", "data.queues", "evaluation.metrics", "evaluation.inception", "evaluation.evaluator",
        "training.loop", "config",
    ]  # fmt: skip
    code = (
        f"import sys, {', '.join('raydrift.' + m for m in core)};"
        "print([m for m in ('ray', 'wandb', 'click', 'polars') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
