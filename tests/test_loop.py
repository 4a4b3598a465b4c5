"""The training loop in a plain process: resume parity, reporting, NaN handling, toy data."""

import json

import pytest
import torch
from fixtures.tiny import tiny

from raydrift.config import apply_overrides
from raydrift.config.presets import get_preset
from raydrift.evaluation.evaluator import Evaluator
from raydrift.training.checkpoint import latest_checkpoint, load_checkpoint
from raydrift.training.loop import NonFiniteLossError, ema_decay, train
from raydrift.training.rundir import PlainReporter, read_history

RESUMED = ("drift.n_unc=4", "drift.cfg_alpha_max=3", "optim.ema_warmup=true")  # step-dependent parts on


def test_ema_warmup_ramps_the_decay_up_to_its_value():
    assert ema_decay(0.995, 0, warmup=False) == 0.995
    assert ema_decay(0.995, 0, warmup=True) == pytest.approx(0.1)  # 1 / 10
    assert ema_decay(0.995, 90, warmup=True) == pytest.approx(91 / 100)
    assert ema_decay(0.995, 10_000, warmup=True) == 0.995  # capped at the configured decay


@pytest.mark.parametrize("field", ["drift.compile=false", "drift.compile=true"])  # eager, or the CPU kernels
def test_resume_gives_the_same_parameters_as_an_uninterrupted_run(tmp_path, field):
    N = 4  # a multiple of train.log_every, so the logged windows line up
    straight = tmp_path / "straight"
    train(
        tiny(f"train.steps={2 * N}", *RESUMED, field),
        PlainReporter(straight),
        log=lambda s: None,
    )

    staged = tmp_path / "staged"
    first = train(
        tiny(f"train.steps={N}", *RESUMED, field),
        PlainReporter(staged),
        log=lambda s: None,
    )
    assert first.step == N
    ckpt = latest_checkpoint(PlainReporter(staged).checkpoint_root())
    second = train(
        tiny(f"train.steps={2 * N}", *RESUMED, field),
        PlainReporter(staged),
        resume_from=ckpt,
        log=lambda s: None,
    )
    assert second.step == 2 * N and second.stage == 1

    a = load_checkpoint(latest_checkpoint(straight / "checkpoints"))
    b = load_checkpoint(latest_checkpoint(staged / "checkpoints"))
    assert a["step"] == b["step"] == 2 * N and a["images_seen"] == b["images_seen"]
    for part in ("model", "ema"):
        for key in a[part]:
            assert torch.allclose(a[part][key], b[part][key], atol=1e-6, rtol=0), (part, key)
    # Same losses after the resume point, and the history tells the stages apart.
    hist_a = {r["step"]: r for r in read_history(straight)}
    hist_b = [r for r in read_history(staged) if r["stage"] == 1]
    assert hist_b and all(r["step"] > N for r in hist_b)
    for r in hist_b:
        assert r["train/loss"] == pytest.approx(hist_a[r["step"]]["train/loss"], rel=1e-6)


def test_reports_progress_in_steps_and_images(tmp_path):
    cfg = tiny("train.steps=4")
    train(cfg, PlainReporter(tmp_path), log=lambda s: None)
    hist = read_history(tmp_path)
    assert [r["step"] for r in hist] == [2, 4]
    assert [r["images_seen"] for r in hist] == [2 * 4 * 8, 4 * 4 * 8]  # steps x classes x samples
    keys = set(hist[-1])
    assert {
        "train/loss",
        "train/scale",
        "train/grad_norm",
        "train/lr",
        "train/force_ms_0",
        "train/tau_2",
    } <= keys
    state = load_checkpoint(latest_checkpoint(tmp_path / "checkpoints"))
    assert state["step"] == 4 and json.dumps(state["config"])


def test_non_finite_loss_stops_with_the_reason(tmp_path):
    cfg = tiny("train.steps=30", "optim.lr=1e6", "optim.grad_clip=0", "optim.warmup_steps=0")
    with pytest.raises(NonFiniteLossError, match=r"loss became (nan|inf) at step \d+"):
        train(cfg, PlainReporter(tmp_path), log=lambda s: None)


def test_toy2d_trains_and_evaluates_with_a_scatter_plot(tmp_path):
    cfg = apply_overrides(
        get_preset("toy2d"),
        [
            "train.steps=40",
            "eval.every=20",
            "eval.num_samples=500",
            "drift.n_pos=128",
            "drift.n_neg=128",
            "drift.compile=false",
            "data.toy_size=2000",
            "train.threads=1",
            "train.log_every=20",
        ],
    )
    train(
        cfg,
        PlainReporter(tmp_path),
        evaluator_factory=lambda c, d, dev: Evaluator(c, d, dev, tmp_path / "s").evaluate,
        log=lambda s: None,
    )
    evals = [r for r in read_history(tmp_path) if "eval/fid" in r]
    assert [r["step"] for r in evals] == [0, 20, 40]
    assert evals[-1]["eval/fid"] < evals[0]["eval/fid"]
    assert evals[-1]["eval/fid_net"] == "identity"
    assert (tmp_path / "s" / "step_000000040.png").exists()
