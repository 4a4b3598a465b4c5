"""The typed configuration tree of a run: one dataclass per section, a docstring under every field.

Choices are ``Literal`` (the dataset, kernel and normalisation choices come from their registries in
:mod:`raydrift.data.registry` and :mod:`raydrift.method.kernels`); numeric bounds are declared next to
their field (``Annotated[int, Range(ge=1)]``) and checked by every section's ``__post_init__``, so a bad
value fails before any work starts. Parsing, ``--set`` overrides and the JSON round trip are in
:mod:`raydrift.config.overrides`.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Annotated, Literal

from raydrift.data.registry import DATASETS
from raydrift.errors import UsageError, check_name
from raydrift.method.kernels import KERNELS, NORMALIZATIONS

DatasetName = Literal[tuple(DATASETS)]  # type: ignore[valid-type]
KernelName = Literal[tuple(KERNELS)]  # type: ignore[valid-type]
NormalizationName = Literal[tuple(NORMALIZATIONS)]  # type: ignore[valid-type]
EncoderName = Literal["resnet18", "resnet50", "convnextv2", "dinov2", "mae"]  # = nets.encoders.ENCODERS (tested)
FeatureStat = Literal["loc", "global", "patch2", "patch4"]  # = method.features.STATS (tested)


class ConfigError(UsageError, ValueError):
    """A bad configuration key or value; the message says what was wrong and what is accepted."""


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass(frozen=True)
class Range:
    """Bounds of a number field (of every item, for a tuple field) and, for tuples, a minimum length."""

    ge: float | None = None
    gt: float | None = None
    lt: float | None = None
    min_items: int = 0

    def describe(self) -> str:
        parts = [f"{op} {v:g}" for op, v in ((">=", self.ge), (">", self.gt), ("<", self.lt)) if v is not None]
        return " and ".join(parts)

    def holds(self, v: float) -> bool:
        return (
            (self.ge is None or v >= self.ge) and (self.gt is None or v > self.gt) and (self.lt is None or v < self.lt)
        )


def field_range(cls: type, name: str) -> Range | None:
    """The ``Range`` declared on field ``name`` of section ``cls``, if any."""
    tp = typing.get_type_hints(cls, include_extras=True)[name]
    if typing.get_origin(tp) is Annotated:
        return next((m for m in tp.__metadata__ if isinstance(m, Range)), None)
    return None


class Section:
    """Base of every config section: checks each field's declared ``Range`` after construction."""

    _prefix = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value, key = getattr(self, f.name), f"{self._prefix}.{f.name}"
            choices = _choices(hints[f.name])
            if choices is not None:
                items = value if isinstance(value, tuple) else (value,)
                bad = [v for v in items if v not in choices]
                check(not bad, f"{key} must be one of {', '.join(map(str, choices))}; got {bad[0]!r}" if bad else "")
            bounds = field_range(type(self), f.name)
            if bounds is None:
                continue
            if isinstance(value, tuple):
                n = "a non-empty tuple of" if bounds.min_items == 1 else f"a tuple of {bounds.min_items}"
                check(
                    len(value) >= bounds.min_items and all(bounds.holds(v) for v in value),
                    f"{key} must be {n} numbers {bounds.describe()}, got {value}",
                )
            else:
                check(bounds.holds(value), f"{key} must be {bounds.describe()}, got {value}")


def _choices(tp) -> tuple | None:
    """The allowed values of a ``Literal`` field, or of the items of a tuple of ``Literal``; else None."""
    if typing.get_origin(tp) is tuple:
        tp = typing.get_args(tp)[0]
    return typing.get_args(tp) if typing.get_origin(tp) is Literal else None


POSITIVE = Range(gt=0)
NON_NEGATIVE = Range(ge=0)
AT_LEAST_1 = Range(ge=1)


@dataclass
class DataConfig(Section):
    _prefix = "data"

    dataset: DatasetName = "digits"
    """Training data; ``digits`` (sklearn's 8x8 digits) is embedded and needs no download."""
    root: str = ""
    """Directory with the dataset files ("" = ~/.cache/raydrift/data/<dataset>)."""
    download: bool = False
    """Download missing files with torchvision (needs internet)."""
    toy: Literal["checkerboard", "swiss_roll", "gaussian_mixture"] = "checkerboard"
    """Which 2-D toy distribution (dataset=toy2d)."""
    toy_size: Annotated[int, AT_LEAST_1] = 20000
    """Number of toy points per split."""


@dataclass
class ModelConfig(Section):
    _prefix = "model"

    arch: Literal["mlp", "dit"] = "dit"
    """Generator: ``dit`` (adaLN-zero transformer, images) or ``mlp`` (residual MLP, 2-D toys)."""
    patch_size: Annotated[int, AT_LEAST_1] = 2
    """DiT patch size (images are padded to a multiple of it)."""
    dim: Annotated[int, AT_LEAST_1] = 64
    """DiT width / MLP hidden width."""
    depth: Annotated[int, AT_LEAST_1] = 3
    """Number of DiT blocks / residual MLP blocks."""
    heads: Annotated[int, AT_LEAST_1] = 4
    """DiT attention heads."""
    mlp_ratio: Annotated[float, POSITIVE] = 4.0
    """DiT MLP expansion."""
    style_codebooks: Annotated[int, NON_NEGATIVE] = 32
    """Random style codebooks whose embeddings add noise to the conditioning (0 = none)."""
    codebook_size: Annotated[int, AT_LEAST_1] = 64
    """Entries per style codebook."""
    noise_dim: Annotated[int, AT_LEAST_1] = 16
    """MLP input noise dimension (the DiT takes noise of the output's shape)."""

    def __post_init__(self):
        super().__post_init__()
        check(self.dim % self.heads == 0, f"model.dim ({self.dim}) must be divisible by model.heads ({self.heads})")


@dataclass
class DriftConfig(Section):
    _prefix = "drift"

    kernel: KernelName = "laplace"
    """Kernel of the normalised distance d: ``laplace`` exp(-d/tau) (paper), ``gaussian`` exp(-d^2/2tau)."""
    normalization: NormalizationName = "xy"
    """Kernel normalisation: softmax over targets and samples (xy), over targets only (y), or none."""
    temperatures: Annotated[tuple[float, ...], Range(gt=0, min_items=1)] = (0.02, 0.05, 0.2)
    """Kernel bandwidths (on the normalised distance)."""
    anneal_rate: Annotated[float, NON_NEGATIVE] = 0.0
    """Temperature annealing tau(step) = tau0 * exp(-anneal_rate * step) (0 = constant)."""
    anneal_floor: Annotated[float, NON_NEGATIVE] = 0.0
    """Lower bound of annealed temperatures."""
    affinity_floor: Annotated[float, NON_NEGATIVE] = 0.0
    """Floor on the affinity; 1e-3 is the authors' code (clamp 1e-6 before the sqrt), 0 the exact value."""
    n_pos: Annotated[int, AT_LEAST_1] = 64
    """Positives (real samples) per class per step, fresh from per-class queues."""
    n_neg: Annotated[int, Range(ge=2)] = 64
    """Generated samples (= negatives) per class per step and worker (>= 2: the self pair is masked)."""
    classes_per_step: Annotated[int, AT_LEAST_1] = 10
    """Classes per step (capped at the dataset's number of classes)."""
    n_unc: Annotated[int, NON_NEGATIVE] = 0
    """Extra unconditional real negatives per class (training-time CFG); 0 disables CFG."""
    cfg_alpha_max: Annotated[float, AT_LEAST_1] = 1.0
    """CFG strengths alpha are drawn per class group from [1, cfg_alpha_max]."""
    space: Literal["pixel", "feature"] = "pixel"
    """Drift in pixel space or on a feature encoder's multi-scale feature set."""
    encoder: EncoderName = "mae"
    """Feature encoder (space=feature): torchvision resnet18/50, timm convnextv2/dinov2, or our MAE."""
    encoder_weights: str = ""
    """Encoder weights file ("" = the usual download; mae: a file from `raydrift encoder train`, or auto)."""
    encoder_auto_steps: Annotated[int, AT_LEAST_1] = 2000
    """MAE training steps when encoder_weights=auto (trained once per dataset and cached)."""
    encoder_layers: tuple[str, ...] = ()
    """Encoder feature maps to use, e.g. layer1,layer2 (empty = all of the encoder's)."""
    encoder_input_size: Annotated[int, NON_NEGATIVE] = 0
    """Square size images are resized to before the encoder (0 = the encoder's default)."""
    encoder_bf16: bool = True
    """Run the encoder under bf16 autocast on CUDA (the drift itself is always float32)."""
    feature_stats: tuple[FeatureStat, ...] = ("loc", "global", "patch2", "patch4")
    """Keys per feature map (paper A.5): per-location vectors, global and 2x2 / 4x4 patch mean and std."""
    feature_pixel_key: bool = True
    """Add the raw-pixel key (flattened images) to the feature-space loss."""
    feature_rms_key: bool = True
    """Add the per-channel RMS key (root mean square of each image channel) to the feature-space loss."""
    exchange: Literal["local", "gather"] = "local"
    """``gather``: all-gather samples and positives across workers so per-class sets grow with workers."""
    compile: bool = True
    """Fuse the drift field: raydrift's CPU kernels on CPU (built with the system C++ compiler on first use),
    torch.compile elsewhere or where those cannot be built; eager if no compiler works. Feature space uses
    the CPU kernels only (one torch.compile graph per key shape would recompile dozens of times)."""

    def __post_init__(self):
        self.temperatures = tuple(float(t) for t in self.temperatures)
        self.encoder_layers = tuple(self.encoder_layers)
        self.feature_stats = tuple(self.feature_stats)
        super().__post_init__()
        check(
            len(set(self.feature_stats)) == len(self.feature_stats),
            f"drift.feature_stats must not repeat an entry; got {self.feature_stats}",
        )
        check(
            self.space == "pixel" or bool(self.feature_stats) or self.feature_pixel_key or self.feature_rms_key,
            "drift.space=feature needs at least one key: feature_stats, feature_pixel_key or feature_rms_key",
        )


@dataclass
class OptimConfig(Section):
    _prefix = "optim"

    lr: Annotated[float, POSITIVE] = 2e-3
    """Peak learning rate (AdamW)."""
    betas: Annotated[tuple[float, float], Range(ge=0, lt=1, min_items=2)] = (0.9, 0.95)
    """AdamW betas."""
    weight_decay: Annotated[float, NON_NEGATIVE] = 0.0
    """AdamW weight decay."""
    warmup_steps: Annotated[int, NON_NEGATIVE] = 50
    """Linear warm-up steps, then constant."""
    grad_clip: Annotated[float, NON_NEGATIVE] = 1.0
    """Gradient-norm clip (0 = off)."""
    ema_decay: Annotated[float, Range(ge=0, lt=1)] = 0.995
    """EMA decay per step of the evaluated generator."""
    ema_warmup: bool = False
    """Ramp the EMA decay as min(ema_decay, (1 + step) / (10 + step)), so that a short run's EMA is not
    dominated by its first, untrained weights (a plain 0.995 EMA still holds 5% of the initial weights at
    step 600); the study budgets turn it on."""

    def __post_init__(self):
        self.betas = tuple(float(b) for b in self.betas)
        check(len(self.betas) == 2, f"optim.betas must be two numbers in [0, 1), got {self.betas}")
        super().__post_init__()


@dataclass
class TrainConfig(Section):
    _prefix = "train"

    steps: Annotated[int, AT_LEAST_1] = 1000
    """Training length in optimizer steps (progress is also reported in images seen)."""
    seed: int = 0
    """Base seed; every random stream is derived from (seed, step, rank, purpose)."""
    log_every: Annotated[int, AT_LEAST_1] = 25
    """Report training metrics every this many steps."""
    checkpoint_every: Annotated[int, NON_NEGATIVE] = 0
    """Checkpoint every this many steps (0 = at eval steps only); always at the end."""
    keep_checkpoints: Annotated[int, AT_LEAST_1] = 2
    """Checkpoints kept on disk (the newest)."""
    threads: Annotated[int, NON_NEGATIVE] = 0
    """torch CPU threads per worker (0 = leave torch's default)."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """bf16: generator and encoder forward under bf16 autocast (cpu or cuda); drift, loss, weights stay fp32."""
    tf32: bool = True
    """Let CUDA's float32 matmuls and convolutions use TF32 (never the drift field's); no effect on CPU."""
    compile_model: bool = False
    """torch.compile the generator for training (the first steps compile; the EMA copy stays eager)."""


@dataclass
class EvalConfig(Section):
    _prefix = "eval"

    every: Annotated[int, NON_NEGATIVE] = 250
    """Evaluate (FID, IS, diversity, grid) every this many steps, at step 0 and at the end (0 = end only)."""
    feature_net: Literal["classifier", "inception", "identity"] = "classifier"
    """FID features: a classifier trained on the data (fast), TF-Inception (standard), raw values (toys)."""
    num_samples: Annotated[int, Range(ge=2)] = 1000
    """Generated samples per FID (class-balanced labels, fixed noise seeds)."""
    reference: Literal["train", "test"] = "train"
    """Real split the reference statistics come from."""
    inception_weights: str = ""
    """Path to TF-Inception pool3 weights ("" = the library's download)."""
    classifier_epochs: Annotated[int, NON_NEGATIVE] = 0
    """Epochs for the FID classifier (0 = a per-dataset default)."""
    cache_dir: str = ""
    """Cache for classifiers and reference statistics ("" = ~/.cache/raydrift)."""
    cfg_alpha: Annotated[float, AT_LEAST_1] = 1.0
    """CFG strength used when sampling for evaluation."""
    grid_per_class: Annotated[int, AT_LEAST_1] = 8
    """Samples per class (one row per class) in the saved sample grid."""
    batch_size: Annotated[int, AT_LEAST_1] = 500
    """Generation / feature batch size."""


@dataclass
class ScalingConfig(Section):
    _prefix = "scaling"

    num_workers: Annotated[int, AT_LEAST_1] = 1
    """Ray Train workers (DDP ranks)."""
    use_gpu: bool = False
    """One GPU (or gpus_per_worker) per worker; nccl backend."""
    cpus_per_worker: Annotated[float, NON_NEGATIVE] = 1.0
    """CPUs reserved per worker."""
    gpus_per_worker: Annotated[float, POSITIVE] = 1.0
    """GPUs per worker when use_gpu (fractions pack small trials onto one GPU)."""


@dataclass
class WandbConfig(Section):
    _prefix = "wandb"

    mode: Literal["disabled", "offline", "online"] = "disabled"
    """W&B logging from rank 0 (never required; offline needs no key or network)."""
    project: str = "raydrift"
    """W&B project."""
    entity: str = ""
    """W&B entity ("" = your default)."""


@dataclass
class Config:
    preset: str = "digits"
    """Name of the preset this config started from."""
    name: str = ""
    """Run name ("" = derived from the preset)."""
    output_dir: str = "runs"
    """Where runs are written (<output_dir>/<name>)."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)

    def __post_init__(self):
        if self.name:
            try:
                check_name(self.name, "name")
            except UsageError as err:
                raise ConfigError(str(err)) from None
        if self.data.dataset == "toy2d":
            check(self.model.arch == "mlp", "dataset toy2d needs model.arch=mlp")
            check(self.eval.feature_net == "identity", "dataset toy2d needs eval.feature_net=identity")
            check(self.drift.space == "pixel", "dataset toy2d needs drift.space=pixel")

    @property
    def run_name(self) -> str:
        return self.name or self.preset
