"""One typed configuration tree for a run; ``--set key=value`` overrides; JSON round trip.

Every field has a one-line docstring (the comment under it), choices are ``Literal``, and each section
validates itself in ``__post_init__`` so a bad value fails before any work starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal


class ConfigError(ValueError):
    """A bad configuration key or value; the message says what was wrong and what is accepted."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass
class DataConfig:
    dataset: Literal["toy2d", "digits", "mnist", "fashion_mnist", "cifar10"] = "digits"
    """Training data; ``digits`` (sklearn's 8x8 digits) is embedded and needs no download."""
    root: str = ""
    """Directory with the dataset files ("" = ~/.cache/raydrift/data/<dataset>)."""
    download: bool = False
    """Download missing files with torchvision (needs internet)."""
    toy: Literal["checkerboard", "swiss_roll", "gaussian_mixture"] = "checkerboard"
    """Which 2-D toy distribution (dataset=toy2d)."""
    toy_size: int = 20000
    """Number of toy points per split."""

    def __post_init__(self):
        _check(self.toy_size > 0, f"data.toy_size must be > 0, got {self.toy_size}")


@dataclass
class ModelConfig:
    arch: Literal["mlp", "dit"] = "dit"
    """Generator: ``dit`` (adaLN-zero transformer, images) or ``mlp`` (residual MLP, 2-D toys)."""
    patch_size: int = 2
    """DiT patch size (images are padded to a multiple of it)."""
    dim: int = 64
    """DiT width / MLP hidden width."""
    depth: int = 3
    """Number of DiT blocks / residual MLP blocks."""
    heads: int = 4
    """DiT attention heads."""
    mlp_ratio: float = 4.0
    """DiT MLP expansion."""
    style_codebooks: int = 32
    """Random style codebooks whose embeddings add noise to the conditioning (0 = none)."""
    codebook_size: int = 64
    """Entries per style codebook."""
    noise_dim: int = 16
    """MLP input noise dimension (the DiT takes noise of the output's shape)."""

    def __post_init__(self):
        for name in ("patch_size", "dim", "depth", "heads", "codebook_size", "noise_dim"):
            _check(getattr(self, name) > 0, f"model.{name} must be > 0, got {getattr(self, name)}")
        _check(
            self.dim % self.heads == 0,
            f"model.dim ({self.dim}) must be divisible by model.heads ({self.heads})",
        )
        _check(self.style_codebooks >= 0, f"model.style_codebooks must be >= 0, got {self.style_codebooks}")
        _check(self.mlp_ratio > 0, f"model.mlp_ratio must be > 0, got {self.mlp_ratio}")


@dataclass
class DriftConfig:
    kernel: Literal["laplace", "gaussian"] = "laplace"
    """Kernel of the normalised distance d: ``laplace`` exp(-d/tau) (paper), ``gaussian`` exp(-d^2/2tau)."""
    normalization: Literal["xy", "y", "none"] = "xy"
    """Kernel normalisation: softmax over targets and samples (xy), over targets only (y), or none."""
    temperatures: tuple[float, ...] = (0.02, 0.05, 0.2)
    """Kernel bandwidths (on the normalised distance)."""
    anneal_rate: float = 0.0
    """Temperature annealing tau(step) = tau0 * exp(-anneal_rate * step) (0 = constant)."""
    anneal_floor: float = 0.0
    """Lower bound of annealed temperatures."""
    affinity_floor: float = 0.0
    """Floor on the affinity; 1e-3 is the authors' code (clamp 1e-6 before the sqrt), 0 the exact value."""
    n_pos: int = 64
    """Positives (real samples) per class per step, fresh from per-class queues."""
    n_neg: int = 64
    """Generated samples (= negatives) per class per step and worker."""
    classes_per_step: int = 10
    """Classes per step (capped at the dataset's number of classes)."""
    n_unc: int = 0
    """Extra unconditional real negatives per class (training-time CFG); 0 disables CFG."""
    cfg_alpha_max: float = 1.0
    """CFG strengths alpha are drawn per class group from [1, cfg_alpha_max]."""
    space: Literal["pixel", "feature"] = "pixel"
    """Drift in pixel space or on a feature encoder's multi-scale feature set."""
    encoder: Literal["resnet18", "resnet50", "convnextv2", "dinov2", "mae"] = "mae"
    """Feature encoder (space=feature): torchvision resnet18/50, timm convnextv2/dinov2, or our MAE."""
    encoder_weights: str = ""
    """Encoder weights file ("" = the usual download; mae: a file from `raydrift encoder train`, or auto)."""
    encoder_auto_steps: int = 2000
    """MAE training steps when encoder_weights=auto (trained once per dataset and cached)."""
    encoder_layers: tuple[str, ...] = ()
    """Encoder feature maps to use, e.g. layer1,layer2 (empty = all of the encoder's)."""
    encoder_input_size: int = 0
    """Square size images are resized to before the encoder (0 = the encoder's default)."""
    encoder_bf16: bool = True
    """Run the encoder under bf16 autocast on CUDA (the drift itself is always float32)."""
    feature_stats: tuple[str, ...] = ("loc", "global", "patch2", "patch4")
    """Keys per feature map (paper A.5): per-location vectors, global and 2x2 / 4x4 patch mean and std."""
    feature_pixel_key: bool = True
    """Add the raw-pixel key (flattened images) to the feature-space loss."""
    feature_rms_key: bool = True
    """Add the per-channel RMS key (root mean square of each image channel) to the feature-space loss."""
    exchange: Literal["local", "gather"] = "local"
    """``gather``: all-gather samples and positives across workers so per-class sets grow with workers."""
    compile: bool = True
    """Fuse the drift field with torch.compile (falls back to eager if no compiler works)."""

    def __post_init__(self):
        self.temperatures = tuple(float(t) for t in self.temperatures)
        _check(
            len(self.temperatures) > 0 and all(t > 0 for t in self.temperatures),
            f"drift.temperatures must be a non-empty tuple of positive numbers, got {self.temperatures}",
        )
        _check(self.anneal_rate >= 0, f"drift.anneal_rate must be >= 0, got {self.anneal_rate}")
        _check(self.anneal_floor >= 0, f"drift.anneal_floor must be >= 0, got {self.anneal_floor}")
        _check(self.affinity_floor >= 0, f"drift.affinity_floor must be >= 0, got {self.affinity_floor}")
        _check(self.n_pos >= 1, f"drift.n_pos must be >= 1, got {self.n_pos}")
        _check(self.n_neg >= 2, f"drift.n_neg must be >= 2 (the self pair is masked), got {self.n_neg}")
        _check(self.classes_per_step >= 1, f"drift.classes_per_step must be >= 1, got {self.classes_per_step}")
        _check(self.n_unc >= 0, f"drift.n_unc must be >= 0, got {self.n_unc}")
        _check(self.encoder_auto_steps >= 1, f"drift.encoder_auto_steps must be >= 1, got {self.encoder_auto_steps}")
        _check(self.cfg_alpha_max >= 1, f"drift.cfg_alpha_max must be >= 1, got {self.cfg_alpha_max}")
        self.encoder_layers = tuple(self.encoder_layers)
        self.feature_stats = tuple(self.feature_stats)
        stats = ("loc", "global", "patch2", "patch4")
        _check(
            all(s in stats for s in self.feature_stats) and len(set(self.feature_stats)) == len(self.feature_stats),
            f"drift.feature_stats must be distinct entries of {', '.join(stats)}; got {self.feature_stats}",
        )
        _check(
            self.encoder_input_size >= 0,
            f"drift.encoder_input_size must be >= 0, got {self.encoder_input_size}",
        )
        _check(
            self.space == "pixel" or bool(self.feature_stats) or self.feature_pixel_key or self.feature_rms_key,
            "drift.space=feature needs at least one key: feature_stats, feature_pixel_key or feature_rms_key",
        )


@dataclass
class OptimConfig:
    lr: float = 2e-3
    """Peak learning rate (AdamW)."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup_steps: int = 50
    """Linear warm-up steps, then constant."""
    grad_clip: float = 1.0
    """Gradient-norm clip (0 = off)."""
    ema_decay: float = 0.995
    """EMA decay per step of the evaluated generator."""

    def __post_init__(self):
        self.betas = tuple(float(b) for b in self.betas)
        _check(self.lr > 0, f"optim.lr must be > 0, got {self.lr}")
        _check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            f"optim.betas must be two numbers in [0, 1), got {self.betas}",
        )
        _check(self.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        _check(self.warmup_steps >= 0, f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        _check(self.grad_clip >= 0, f"optim.grad_clip must be >= 0, got {self.grad_clip}")
        _check(0 <= self.ema_decay < 1, f"optim.ema_decay must be in [0, 1), got {self.ema_decay}")


@dataclass
class TrainConfig:
    steps: int = 1000
    """Training length in optimizer steps (progress is also reported in images seen)."""
    seed: int = 0
    """Base seed; every random stream is derived from (seed, step, rank, purpose)."""
    log_every: int = 25
    """Report training metrics every this many steps."""
    checkpoint_every: int = 0
    """Checkpoint every this many steps (0 = at eval steps only); always at the end."""
    keep_checkpoints: int = 2
    """Checkpoints kept on disk (the newest)."""
    threads: int = 0
    """torch CPU threads per worker (0 = leave torch's default)."""

    def __post_init__(self):
        _check(self.steps >= 1, f"train.steps must be >= 1, got {self.steps}")
        _check(self.log_every >= 1, f"train.log_every must be >= 1, got {self.log_every}")
        _check(self.checkpoint_every >= 0, f"train.checkpoint_every must be >= 0, got {self.checkpoint_every}")
        _check(self.keep_checkpoints >= 1, f"train.keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        _check(self.threads >= 0, f"train.threads must be >= 0, got {self.threads}")


@dataclass
class EvalConfig:
    every: int = 250
    """Evaluate (FID, IS, diversity, grid) every this many steps, at step 0 and at the end (0 = end only)."""
    feature_net: Literal["classifier", "inception", "identity"] = "classifier"
    """FID features: a classifier trained on the data (fast), TF-Inception (standard), raw values (toys)."""
    num_samples: int = 1000
    """Generated samples per FID (class-balanced labels, fixed noise seeds)."""
    reference: Literal["train", "test"] = "train"
    """Real split the reference statistics come from."""
    inception_weights: str = ""
    """Path to TF-Inception pool3 weights ("" = the library's download)."""
    classifier_epochs: int = 0
    """Epochs for the FID classifier (0 = a per-dataset default)."""
    cache_dir: str = ""
    """Cache for classifiers and reference statistics ("" = ~/.cache/raydrift)."""
    cfg_alpha: float = 1.0
    """CFG strength used when sampling for evaluation."""
    grid_per_class: int = 8
    """Samples per class (one row per class) in the saved sample grid."""
    batch_size: int = 500
    """Generation / feature batch size."""

    def __post_init__(self):
        _check(self.every >= 0, f"eval.every must be >= 0, got {self.every}")
        _check(self.num_samples >= 2, f"eval.num_samples must be >= 2, got {self.num_samples}")
        _check(self.classifier_epochs >= 0, f"eval.classifier_epochs must be >= 0, got {self.classifier_epochs}")
        _check(self.cfg_alpha >= 1, f"eval.cfg_alpha must be >= 1, got {self.cfg_alpha}")
        _check(self.grid_per_class >= 1, f"eval.grid_per_class must be >= 1, got {self.grid_per_class}")
        _check(self.batch_size >= 1, f"eval.batch_size must be >= 1, got {self.batch_size}")


@dataclass
class ScalingConfig:
    num_workers: int = 1
    """Ray Train workers (DDP ranks)."""
    use_gpu: bool = False
    """One GPU (or gpus_per_worker) per worker; nccl backend."""
    cpus_per_worker: float = 1.0
    """CPUs reserved per worker."""
    gpus_per_worker: float = 1.0
    """GPUs per worker when use_gpu (fractions pack small trials onto one GPU)."""

    def __post_init__(self):
        _check(self.num_workers >= 1, f"scaling.num_workers must be >= 1, got {self.num_workers}")
        _check(self.cpus_per_worker >= 0, f"scaling.cpus_per_worker must be >= 0, got {self.cpus_per_worker}")
        _check(self.gpus_per_worker > 0, f"scaling.gpus_per_worker must be > 0, got {self.gpus_per_worker}")


@dataclass
class WandbConfig:
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
        if self.data.dataset == "toy2d":
            _check(self.model.arch == "mlp", "dataset toy2d needs model.arch=mlp")
            _check(self.eval.feature_net == "identity", "dataset toy2d needs eval.feature_net=identity")
            _check(self.drift.space == "pixel", "dataset toy2d needs drift.space=pixel")

    @property
    def run_name(self) -> str:
        return self.name or self.preset


# ---------------------------------------------------------------- dict / JSON round trip and overrides


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(data: dict[str, Any], cls: type = Config) -> Any:
    """Build ``cls`` from a nested dict, validating every key and value."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(_unknown_key_message(key, names, cls.__name__))
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{key} must be a mapping of its fields, got {value!r}")
            kwargs[key] = from_dict(value, tp)
        else:
            kwargs[key] = _coerce(value, tp, key)
    return cls(**kwargs)


def flat_keys(cls: type = Config, prefix: str = "") -> dict[str, Any]:
    """``{"drift.kernel": type, ...}`` for every leaf field."""
    out = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.update(flat_keys(tp, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = tp
    return out


def apply_overrides(cfg: Config, overrides: dict[str, Any] | list[str]) -> Config:
    """New config with dotted-key overrides: ``["drift.kernel=gaussian"]`` or ``{"drift.kernel": ...}``.

    String values are parsed by the field's type (``0.02,0.05`` or ``[0.02, 0.05]`` for tuples); one
    item of a tuple field is set with an index: ``drift.temperatures[0]=0.01``.
    """
    if isinstance(overrides, list):
        parsed = {}
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} must look like key=value (e.g. drift.kernel=gaussian)")
            key, value = item.split("=", 1)
            parsed[key.strip()] = value.strip()
        overrides = parsed
    data = to_dict(cfg)
    leaves = flat_keys()
    for key, value in overrides.items():
        base, index = split_index(key)
        if base not in leaves:
            raise ConfigError(_unknown_key_message(base, set(leaves), "the config"))
        node = data
        *parents, leaf = base.split(".")
        for p in parents:
            node = node[p]
        tp = leaves[base]
        if index is None:
            node[leaf] = _coerce(value, tp, key) if isinstance(value, str) else value
            continue
        if typing.get_origin(tp) is not tuple:
            raise ConfigError(f"{key}: only tuple fields take an index, and {base} is {_type_name(tp)}")
        items = list(node[leaf])
        if not 0 <= index < len(items):
            raise ConfigError(f"{key}: index out of range, {base} has {len(items)} items {tuple(items)}")
        items[index] = _coerce(value, typing.get_args(tp)[0], key)
        node[leaf] = items
    return from_dict(data)


def split_index(key: str) -> tuple[str, int | None]:
    """``"drift.temperatures[0]"`` -> ``("drift.temperatures", 0)``; plain keys get ``None``."""
    match = re.fullmatch(r"(.+)\[(\d+)\]", key)
    return (match.group(1), int(match.group(2))) if match else (key, None)


def describe_keys() -> list[tuple[str, str, str]]:
    """``(key, type, doc)`` for every leaf (for ``--help`` style listings)."""
    out = []
    for key, tp in flat_keys().items():
        out.append((key, _type_name(tp), _field_doc(key)))
    return out


def _field_doc(dotted: str) -> str:
    import ast
    import inspect

    cls: type = Config
    *parents, leaf = dotted.split(".")
    for p in parents:
        cls = typing.get_type_hints(cls)[p]
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == leaf:
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                return str(nxt.value.value)
    return ""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "|".join(str(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "tuple of " + getattr(typing.get_args(tp)[0], "__name__", str(tp))
    return getattr(tp, "__name__", str(tp))


def _unknown_key_message(key: str, names: set[str], where: str) -> str:
    close = difflib.get_close_matches(key, sorted(names), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return f"unknown config key {key!r} in {where}.{hint} (`raydrift train --list-keys` lists every key)"


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Parse/check ``value`` against the annotation ``tp``; raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    try:
        if origin is Literal:
            choices = typing.get_args(tp)
            if value not in choices:
                raise ConfigError(f"{key} must be one of {', '.join(map(str, choices))}; got {value!r}")
            return value
        if origin is tuple:
            item_tp = typing.get_args(tp)[0]
            if isinstance(value, str):
                text = value.strip().strip("()[]")
                value = [v for v in (p.strip() for p in text.split(",")) if v]
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{key} must be a list like 0.02,0.05; got {value!r}")
            return tuple(_coerce(v, item_tp, key) for v in value)
        if origin in (typing.Union, types.UnionType):
            raise ConfigError(f"{key}: unsupported annotation {tp}")
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in (
                "true",
                "1",
                "yes",
                "on",
                "false",
                "0",
                "no",
                "off",
            ):
                return value.lower() in ("true", "1", "yes", "on")
            raise ConfigError(f"{key} must be true or false; got {value!r}")
        if tp is int:
            num = float(value) if isinstance(value, str) else value
            if isinstance(num, bool) or not float(num).is_integer():
                raise ConfigError(f"{key} must be an integer; got {value!r}")
            return int(num)
        if tp is float:
            if isinstance(value, bool):
                raise ConfigError(f"{key} must be a number; got {value!r}")
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        kind = {"int": "an integer", "float": "a number"}.get(_type_name(tp), _type_name(tp))
        raise ConfigError(f"{key} must be {kind}; got {value!r}") from None
    raise ConfigError(f"{key}: unsupported annotation {tp}")


def save_config(cfg: Config, path) -> None:
    with open(path, "w") as f:
        json.dump(to_dict(cfg), f, indent=2, sort_keys=True)


def load_config(path) -> Config:
    with open(path) as f:
        return from_dict(json.load(f))
