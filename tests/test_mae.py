"""raydrift's MAE encoder: masking, the masked-patch loss, training (learning, determinism, EMA), the
weights file, the ``raydrift encoder`` CLI, and a feature-space training run of the loop with it."""

import pytest
import torch
from click.testing import CliRunner

from raydrift.cli.encoder import encoder
from raydrift.config import apply_overrides
from raydrift.config.presets import get_preset
from raydrift.data.datasets import load_dataset
from raydrift.nets.mae import MAE, MAEArch, MAEEncoderNet, knn_accuracy, load_mae, save_mae, train_mae
from raydrift.training.loop import train
from raydrift.training.rundir import PlainReporter, read_history

SMALL = MAEArch(in_channels=1, widths=(8, 16), groups=4)


def test_random_mask_covers_whole_patches_at_the_ratio():
    mae = MAE(SMALL, decoder_width=8, patch_size=4, mask_ratio=0.5)
    x = torch.zeros(5, 1, 28, 28)
    mask = mae.random_mask(x, torch.Generator().manual_seed(0))
    assert mask.shape == (5, 1, 28, 28)
    patches = mask.view(5, 7, 4, 7, 4)
    assert (patches.amax((2, 4)) == patches.amin((2, 4))).all()  # constant on each 4x4 patch
    assert (patches[:, :, 0, :, 0].sum((1, 2)) == round(49 * 0.5)).all()
    assert not torch.equal(mask[0], mask[1])  # a fresh mask per image


def test_loss_only_sees_masked_pixels(monkeypatch):
    mae = MAE(SMALL, decoder_width=8, patch_size=2, mask_ratio=0.5)
    x = torch.rand(3, 1, 8, 8)
    mask = mae.random_mask(x, torch.Generator().manual_seed(1))
    # A "reconstruction" exact on masked pixels and wrong everywhere else has zero loss.
    monkeypatch.setattr(mae, "reconstruct", lambda xm: torch.where(mask.bool(), x, xm + 5))
    assert mae.loss(x, torch.Generator().manual_seed(1)).item() == 0.0
    monkeypatch.setattr(mae, "reconstruct", lambda xm: torch.where(mask.bool(), x + 1, x))
    assert mae.loss(x, torch.Generator().manual_seed(1)).item() == pytest.approx(1.0)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "test")


def test_training_learns_is_deterministic_and_saves_the_ema(tmp_path, digits):
    train_set, test_set = digits
    kw = dict(arch=SMALL, steps=60, batch_size=64, patch_size=2, warmup=5, ema_decay=0.9, log=None, log_every=20)
    net, summary = train_mae(train_set.x, seed=0, **kw)
    assert summary["losses"][-1] < summary["losses"][0]
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    again, _ = train_mae(train_set.x, seed=0, **kw)
    for a, b in zip(net.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

    path = save_mae(tmp_path / "sub" / "mae.pt", net, summary | {"dataset": "digits"})
    loaded, meta = load_mae(path)
    assert meta["dataset"] == "digits" and meta["steps"] == 60
    x = train_set.get(torch.arange(4))
    for k, v in net(x).items():
        torch.testing.assert_close(loaded(x)[k], v, rtol=0, atol=0)

    acc = knn_accuracy(net, train_set.x, train_set.y, test_set.x, test_set.y)
    assert acc > 0.5  # ten classes: chance is 0.1


def test_load_rejects_other_files(tmp_path):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="raydrift encoder train"):
        load_mae(tmp_path / "other.pt")


def test_arch_validation():
    with pytest.raises(ValueError, match="divisible"):
        MAEArch(widths=(10, 20), groups=8)
    with pytest.raises(ValueError, match="channels"):
        train_mae(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), arch=SMALL, steps=1, log=None)


def test_cli_trains_and_writes_a_weights_file(tmp_path):
    out = tmp_path / "mae.pt"
    args = ["train", "--dataset", "digits", "--steps", "5", "--batch-size", "32", "--widths", "8,16"]
    args += ["--out", str(out), "--threads", "1", "--no-probe"]
    dry = CliRunner().invoke(encoder, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "patch 2" in dry.output and not out.exists()
    result = CliRunner().invoke(encoder, args)
    assert result.exit_code == 0, result.output
    net, meta = load_mae(out)
    assert meta["dataset"] == "digits" and meta["image_shape"] == [1, 8, 8] and net.arch.widths == (8, 16)
    assert f"drift.encoder_weights={out}" in result.output
    listing = CliRunner().invoke(encoder, ["list"])
    assert all(name in listing.output for name in ("resnet18", "resnet50", "convnextv2", "dinov2", "mae"))


def test_loop_trains_in_feature_space_with_the_mae(tmp_path):
    path = save_mae(tmp_path / "mae.pt", MAEEncoderNet(SMALL), {"dataset": "digits"})
    cfg = apply_overrides(
        get_preset("digits"),
        [
            "model.dim=32",
            "model.depth=1",
            "model.heads=2",
            "drift.n_pos=8",
            "drift.n_neg=8",
            "drift.classes_per_step=3",
            "drift.compile=false",
            "drift.space=feature",
            "drift.encoder=mae",
            f"drift.encoder_weights={path}",
            "train.steps=3",
            "train.log_every=1",
            "eval.every=0",
            "train.threads=1",
        ],
    )
    state = train(cfg, PlainReporter(tmp_path / "run"), log=lambda s: None)
    assert state.step == 3
    records = [r for r in read_history(tmp_path / "run") if "train/loss" in r]
    assert len(records) == 3 and all(r["train/loss"] > 0 for r in records)
    missing = apply_overrides(cfg, [f"drift.encoder_weights={tmp_path / 'none.pt'}"])
    with pytest.raises(FileNotFoundError, match="raydrift encoder train --dataset digits"):
        train(missing, PlainReporter(tmp_path / "run2"), log=lambda s: None)


def test_auto_weights_are_trained_once_and_cached(tmp_path):
    """drift.encoder_weights=auto: the first run trains the MAE on the data and caches it; later runs reuse it."""
    from raydrift.config import apply_overrides
    from raydrift.config.presets import get_preset
    from raydrift.training.loop import train
    from raydrift.training.rundir import PlainReporter, read_history

    cfg = apply_overrides(
        get_preset("digits"),
        {
            "drift.space": "feature",
            "drift.encoder": "mae",
            "drift.encoder_weights": "auto",
            "drift.encoder_auto_steps": 3,
            "eval.cache_dir": str(tmp_path / "cache"),
            "train.steps": 2,
            "train.log_every": 1,
            "eval.every": 0,
            "model.dim": 32,
            "model.depth": 1,
            "model.heads": 2,
            "drift.n_pos": 8,
            "drift.n_neg": 8,
            "drift.classes_per_step": 2,
            "train.threads": 1,
        },
    )
    logs = []
    train(cfg, PlainReporter(tmp_path / "a"), log=logs.append)
    (weights,) = (tmp_path / "cache").glob("mae-digits-*.pt")
    mtime = weights.stat().st_mtime_ns
    assert any("training the MAE encoder for digits" in line for line in logs)
    logs.clear()
    train(cfg, PlainReporter(tmp_path / "b"), log=logs.append)
    assert weights.stat().st_mtime_ns == mtime and not any("training the MAE" in line for line in logs)
    assert all(r["train/loss"] > 0 for r in read_history(tmp_path / "b"))
