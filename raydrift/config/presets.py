"""Named starting points: each a function returning a :class:`Config` (override with ``--set``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
)


def toy2d() -> Config:
    """2-D checkerboard with an MLP generator: seconds per hundred steps, a scatter plot per eval."""
    return Config(
        preset="toy2d",
        data=DataConfig(dataset="toy2d", toy="checkerboard"),
        model=ModelConfig(arch="mlp", dim=256, depth=3, noise_dim=16, style_codebooks=0),
        drift=DriftConfig(n_pos=256, n_neg=256, classes_per_step=1),
        optim=OptimConfig(lr=1e-3, warmup_steps=50, ema_decay=0.99),
        train=TrainConfig(steps=1500, log_every=50),
        eval=EvalConfig(every=500, feature_net="identity", num_samples=2000),
    )


def digits() -> Config:
    """sklearn's 8x8 digits (embedded, no download), a small DiT; a few minutes on 2 CPU cores."""
    return Config(
        preset="digits",
        data=DataConfig(dataset="digits"),
        model=ModelConfig(arch="dit", patch_size=2, dim=64, depth=3, heads=4),
        drift=DriftConfig(n_pos=64, n_neg=64, classes_per_step=10),
        optim=OptimConfig(lr=2e-3, warmup_steps=50, ema_decay=0.995),
        train=TrainConfig(steps=1000, log_every=25),
        eval=EvalConfig(every=250, num_samples=1000),
        scaling=ScalingConfig(num_workers=1, cpus_per_worker=2),
    )


def mnist() -> Config:
    """Real MNIST (28x28), a small DiT of patch 4; sized for ~25 minutes on 2 CPU cores (scale up on a GPU)."""
    return Config(
        preset="mnist",
        data=DataConfig(dataset="mnist"),
        model=ModelConfig(arch="dit", patch_size=4, dim=64, depth=3, heads=4),
        drift=DriftConfig(n_pos=32, n_neg=32, classes_per_step=10),
        optim=OptimConfig(lr=2e-3, warmup_steps=100, ema_decay=0.998),
        train=TrainConfig(steps=3600, log_every=100),
        eval=EvalConfig(every=900, num_samples=2000),
        scaling=ScalingConfig(num_workers=1, cpus_per_worker=2),
    )


def gpu() -> Config:
    """MNIST sized for one modern GPU (bf16, compiled DiT-S/2-like generator, 128 samples per class).

    Sized on paper, not yet measured on a GPU (benchmarks/gpu_check.py measures it; its numbers go in
    benchmarks/README.md). The experiment report's best MNIST setting was 128 positives and 128 generated
    samples per class over 10 classes (1280 images per step) for ~23k steps; this preset keeps that batch
    and scales the model to patch 2 (196 tokens), width 256, depth 6 (7.9M parameters).
    Estimate per step: 6 x 7.9M params x 251k tokens ~ 12 TFLOP (fwd+bwd), attention ~1 TFLOP, the drift
    field (10 groups of 128 x 384 targets x 784 dims, 3 temperatures) negligible; an H100/H200 sustaining
    ~100-300 TFLOP/s of bf16 on a model this narrow gives ~8-25 steps/s, i.e. 2k-6k steps in 4 minutes.
    Memory: ~34 saved activations of width 256 per token and block, 251k tokens x 6 blocks x 2 bytes
    ~ 26 GB (bf16; ~50 GB in fp32): fits one 40 GB+ GPU in bf16. Halve ``drift.n_neg`` on smaller ones.
    """
    return Config(
        preset="gpu",
        data=DataConfig(dataset="mnist"),
        model=ModelConfig(arch="dit", patch_size=2, dim=256, depth=6, heads=4),
        drift=DriftConfig(n_pos=128, n_neg=128, classes_per_step=10),
        optim=OptimConfig(lr=1e-3, warmup_steps=200, ema_decay=0.999),
        train=TrainConfig(steps=5000, log_every=100, precision="bf16", compile_model=True),
        eval=EvalConfig(every=1000, num_samples=4096),
        scaling=ScalingConfig(num_workers=1, use_gpu=True, cpus_per_worker=4),
    )


def fashion_mnist() -> Config:
    """Fashion-MNIST, same model and budget as the mnist preset."""
    cfg = mnist()
    cfg.preset, cfg.data = "fashion_mnist", DataConfig(dataset="fashion_mnist")
    return cfg


def cifar10() -> Config:
    """CIFAR-10 at the experiment report's scale: a DiT-S/2-sized generator on one GPU worker.

    On paper (not yet measured): patch 2 on 32x32 gives 256 tokens; width 384, depth 12 is 33M parameters
    (with adaLN). One step is 10 classes x 64 samples = 640 images = 164k tokens: 6 x 33M x 164k ~ 33 TFLOP
    plus ~1 TFLOP of attention, so ~5-10 steps/s on one H100/H200 in bf16 (``--set train.precision=bf16
    train.compile_model=true``; about half that in fp32 with TF32): 50k steps in ~1.5-3 h. Activation memory
    ~ 34 x 384 x 164k x 12 blocks x 2 bytes ~ 51 GB in bf16 (~100 GB in fp32): bf16 on an 80 GB GPU, or
    ``drift.n_neg=32`` to halve it. A feature-space run adds the encoder's activations for 640 generated
    images (with grad) and the positives (without).
    """
    return Config(
        preset="cifar10",
        data=DataConfig(dataset="cifar10"),
        model=ModelConfig(arch="dit", patch_size=2, dim=384, depth=12, heads=6),
        drift=DriftConfig(n_pos=64, n_neg=64, classes_per_step=10),
        optim=OptimConfig(lr=2e-4, warmup_steps=1000, ema_decay=0.9995),
        train=TrainConfig(steps=50000, log_every=100),
        eval=EvalConfig(every=2500, num_samples=10000),
        scaling=ScalingConfig(num_workers=1, use_gpu=True, cpus_per_worker=4),
    )


PRESETS: dict[str, Callable[[], Config]] = {
    "toy2d": toy2d,
    "digits": digits,
    "mnist": mnist,
    "fashion_mnist": fashion_mnist,
    "gpu": gpu,
    "cifar10": cifar10,
}


# What a study changes in a preset for each of its trials (a study runs many, so each is smaller than a
# standalone run), shared by every study file; a study's own FIXED, TRIAL and PRESETS entries go on top.
# Short runs are judged early (rungs), so their EMA ramps up (optim.ema_warmup): with a plain 0.995 EMA a
# digits trial (600 steps, plain process) was at FID 553 / 130 at steps 150 / 300 with a 0.99 EMA and at
# 106 / 67 with the ramp, which then reached 18 at step 450 and 10.3 at 600 (class-mean generator 38.7).
STUDY_BUDGETS: dict[str, dict[str, Any]] = {
    "digits": {
        "train.steps": 800,
        "eval.every": 200,
        "eval.num_samples": 500,
        "train.log_every": 50,
        "model.depth": 2,
        "drift.n_pos": 32,
        "drift.n_neg": 32,
        "drift.compile": False,
        "optim.ema_warmup": True,
    },
    "mnist": {
        "train.steps": 20000,
        "eval.every": 1000,
        "eval.num_samples": 2000,
        "train.log_every": 100,
        "optim.ema_warmup": True,
    },
    "cifar10": {
        "train.steps": 50000,
        "eval.every": 2500,
        "eval.num_samples": 10000,
        "train.log_every": 100,
        "scaling.use_gpu": True,
        "optim.ema_warmup": True,
    },
}


def get_preset(name: str) -> Config:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]()
