"""Mixed precision, a compiled generator and a stop callback in the training loop (plain process, CPU)."""

import pytest
import torch
from fixtures.tiny import tiny

from raydrift import seeding
from raydrift.config import ConfigError, apply_overrides
from raydrift.method.drift import drift_loss
from raydrift.nets.generators import build_generator
from raydrift.training.checkpoint import latest_checkpoint, load_checkpoint
from raydrift.training.loop import train
from raydrift.training.precision import PrecisionError, autocast, check_precision
from raydrift.training.rundir import PlainReporter, read_history


def test_precision_choices_are_checked():
    with pytest.raises(ConfigError, match="train.precision must be one of fp32, bf16; got 'fp16'"):
        tiny("train.precision=fp16")
    with pytest.raises(PrecisionError, match="not meta; use fp32"):
        check_precision("bf16", torch.device("meta"))
    check_precision("bf16", torch.device("cpu"))  # CPU autocast runs bf16: allowed


def test_bf16_runs_the_generator_in_bf16_and_the_drift_in_float32():
    cfg = tiny("train.precision=bf16")
    net = build_generator(cfg.model, (1, 8, 8), 10)
    for p in net.head.parameters():  # a non-zero head, so the output depends on the whole network
        torch.nn.init.normal_(p, std=0.1)
    inputs = net.draw_inputs(torch.arange(10).repeat(4), generator=torch.Generator().manual_seed(0))
    cpu = torch.device("cpu")
    with autocast("bf16", cpu):
        x = net(inputs.noise, inputs.labels, inputs.alpha, inputs.style)
    assert x.dtype == torch.bfloat16
    gen = x.float().view(10, 4, -1).detach()
    pos = torch.randn(10, 6, 64, generator=torch.Generator().manual_seed(1))
    outside, info_outside = drift_loss(gen, pos, affinity_floor=0.0)
    with autocast("bf16", cpu):  # the loop never does this, but the field must not care
        inside, info_inside = drift_loss(gen, pos, affinity_floor=0.0)
        assert torch.matmul(gen, pos.transpose(1, 2)).dtype == torch.bfloat16  # autocast is on here
    assert inside.dtype == torch.float32 and torch.equal(inside, outside)
    assert torch.equal(info_inside["scale"], info_outside["scale"])


def test_bf16_training_follows_fp32_closely(tmp_path):
    """Same seed, same data: the bf16 run's weight updates are the fp32 run's up to bf16 rounding."""
    cfg = tiny("train.steps=8")
    torch.manual_seed(seeding.derive_seed(cfg.train.seed, purpose="init"))  # the loop's initial weights
    w0 = build_generator(cfg.model, (1, 8, 8), 10).state_dict()
    runs = {}
    for precision in ("fp32", "bf16"):
        train(apply_overrides(cfg, [f"train.precision={precision}"]), PlainReporter(tmp_path / precision))
        runs[precision] = load_checkpoint(latest_checkpoint(tmp_path / precision / "checkpoints"))["model"]
    w32, w16 = runs["fp32"], runs["bf16"]
    assert all(v.dtype == torch.float32 for v in w16.values())  # parameters stay float32
    step32 = torch.cat([(w32[k] - w0[k]).flatten() for k in w0])
    step16 = torch.cat([(w16[k] - w0[k]).flatten() for k in w0])
    assert step32.norm() > 0.1  # the run moved the weights
    assert (step16 - step32).norm() < 0.1 * step32.norm(), ((step16 - step32).norm(), step32.norm())


def test_stop_ends_the_run_with_the_final_report_evaluation_and_checkpoint(tmp_path):
    cfg = tiny("train.steps=1000")
    evaluated = []

    def evaluate(ema, step):
        evaluated.append(step)
        return {"eval/marker": step}

    state = train(
        cfg,
        PlainReporter(tmp_path),
        evaluator_factory=lambda c, d, dev: evaluate,
        stop=lambda s: s.step >= 3,
    )
    assert state.step == 3 and evaluated == [3]
    assert read_history(tmp_path)[-1]["eval/marker"] == 3 and read_history(tmp_path)[-1]["step"] == 3
    assert load_checkpoint(latest_checkpoint(tmp_path / "checkpoints"))["step"] == 3


@pytest.mark.slow
def test_compiled_generator_trains_like_the_eager_one(tmp_path):
    cfg = tiny("train.steps=4")
    torch.manual_seed(seeding.derive_seed(cfg.train.seed, purpose="init"))
    w0 = build_generator(cfg.model, (1, 8, 8), 10).state_dict()
    steps = {}
    for compiled in (False, True):
        run = apply_overrides(cfg, [f"train.compile_model={str(compiled).lower()}"])
        train(run, PlainReporter(tmp_path / str(compiled)))
        w = load_checkpoint(latest_checkpoint(tmp_path / str(compiled) / "checkpoints"))["model"]
        steps[compiled] = torch.cat([(w[k] - w0[k]).flatten() for k in w0])  # same keys: the net is saved uncompiled
    assert steps[False].norm() > 0.1
    assert (steps[True] - steps[False]).norm() < 1e-3 * steps[False].norm()
