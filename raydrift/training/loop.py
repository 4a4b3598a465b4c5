"""The per-worker training loop: one function, counted in steps and images seen, Ray-free.

It talks to the outside only through a :class:`Reporter` (metrics + checkpoint directories), so the same
code runs inside a Ray Train worker and in a plain process (tests). Distributed data parallelism uses
``torch.distributed`` directly when a process group is initialised (Ray Train's TorchTrainer does that).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from raydrift import seeding
from raydrift.config.overrides import to_dict
from raydrift.data.datasets import Dataset, load_split
from raydrift.data.queues import ClassQueues
from raydrift.method.drift import anneal_temperatures
from raydrift.method.objective import build_objective
from raydrift.nets.generators import Generator, GeneratorInputs, build_generator

from .checkpoint import load_checkpoint, restore_training_state, save_checkpoint, training_state
from .exchange import gather_step
from .precision import autocast, check_precision, configure_matmul, maybe_compile

if TYPE_CHECKING:
    from raydrift.config.schema import Config, DriftConfig

EvaluateFn = Callable[[Generator, int], dict[str, Any]]  # (EMA generator, step) -> eval/... metrics
EvaluatorFactory = Callable[["Config", Dataset, torch.device], EvaluateFn]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; the run stops (a study marks the trial failed and goes on)."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


class Reporter(Protocol):
    """Where a worker's metrics and checkpoints go. Every rank calls ``report`` the same number of times."""

    def checkpoint_root(self) -> Path: ...

    def report(self, metrics: dict[str, Any], checkpoint: Path | None = None) -> None: ...


@dataclass
class TrainState:
    step: int = 0
    images_seen: int = 0
    stage: int = 0  # 0 for a fresh run, +1 per resume


def learning_rate(cfg: Config, step: int) -> float:
    """Linear warm-up over ``optim.warmup_steps``, then constant."""
    warm = cfg.optim.warmup_steps
    return cfg.optim.lr * (min(1.0, (step + 1) / warm) if warm else 1.0)


def ema_decay(decay: float, step: int, warmup: bool) -> float:
    """The EMA decay applied after optimizer step ``step`` (0-based); with ``warmup``, ramped up from 0.1."""
    return min(decay, (1 + step) / (10 + step)) if warmup else decay


def train(
    cfg: Config,
    reporter: Reporter,
    *,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str = "cpu",
    resume_from: Path | None = None,
    evaluator_factory: EvaluatorFactory | None = None,
    log: Callable[[str], None] = print,
    stop: Callable[[TrainState], bool] | None = None,
) -> TrainState:
    """Train ``cfg`` on this worker until ``cfg.train.steps``; returns the final state.

    ``stop`` (plain processes, e.g. a wall-clock budget; one worker) is asked after every step: True makes
    this step the last, with the final report, evaluation and checkpoint of ``cfg.train.steps``.
    """
    device = torch.device(device)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    check_precision(cfg.train.precision, device)
    configure_matmul(device, cfg.train.tf32)
    d, seed, steps = cfg.drift, cfg.train.seed, cfg.train.steps

    # Set up data, generator, EMA, optimizer, queues, objective.
    data, net, ema, opt, queues, objective = _build(cfg, device, rank, log)
    state = TrainState()

    # Resume.
    if resume_from is not None:
        ckpt = load_checkpoint(resume_from)
        state = TrainState(**restore_training_state(ckpt, net=net, ema=ema, opt=opt, queues=queues, rank=rank))
        log(f"resumed from {resume_from} at step {state.step} (stage {state.stage})")

    model = net
    if world_size > 1:
        model = DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
    model = maybe_compile(model, cfg.train.compile_model)
    evaluate = evaluator_factory(cfg, data, device) if (evaluator_factory and rank == 0) else None
    G = min(d.classes_per_step, data.num_classes)
    images_per_step = G * d.n_neg * world_size
    meter = _Meter(images_per_step)

    def is_eval_step(step: int) -> bool:
        return step == steps or (cfg.eval.every > 0 and step % cfg.eval.every == 0)

    def save(metrics: dict[str, Any], *, with_eval: bool) -> None:
        """Evaluate (rank 0), checkpoint (a collective), report with the checkpoint."""
        if evaluate is not None and with_eval:
            metrics = metrics | evaluate(ema, state.step)
        ckpt = training_state(
            asdict(state), net=net, ema=ema, opt=opt, queues=queues, config=to_dict(cfg), world_size=world_size
        )
        root = reporter.checkpoint_root()
        path = save_checkpoint(root, state.step, ckpt, keep=cfg.train.keep_checkpoints) if rank == 0 else None
        reporter.report(asdict(state) | metrics, checkpoint=path)

    if state.step == 0 and state.stage == 0 and cfg.eval.every > 0:
        save({}, with_eval=True)

    while state.step < steps:
        step = state.step
        # Draw this step's groups: classes (shared by all ranks), CFG strengths, noise, positives.
        inputs, pos, neg, w_neg = _draw_groups(net, data, queues, d, G, seed=seed, step=step, rank=rank)
        taus = anneal_temperatures(d.temperatures, step, d.anneal_rate, d.anneal_floor)

        # Generate, drift, update.
        lr = learning_rate(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        with autocast(cfg.train.precision, device):
            x = model(inputs.noise, inputs.labels, inputs.alpha, inputs.style)
        x = x.float().view(G, d.n_neg, *data.sample_shape)  # the drift and loss are float32
        loss_scale = 1
        if d.exchange == "gather" and world_size > 1:
            x, pos, neg, w_neg, loss_scale = gather_step(x, pos, neg, w_neg)
        loss, info = objective(x, pos, neg, w_neg, taus)
        opt.zero_grad(set_to_none=True)
        (loss * loss_scale).backward()
        grad_norm = _clip_grad_norm(net, cfg.optim.grad_clip)
        _stop_if_not_finite(loss, grad_norm, step, lr, world_size)
        opt.step()

        # Update EMA.
        _update_ema(ema, net, ema_decay(cfg.optim.ema_decay, state.step, cfg.optim.ema_warmup))
        state.step += 1
        state.images_seen += images_per_step
        meter.add(loss, info, grad_norm, taus)
        if stop is not None and state.step < steps and stop(state):
            steps = state.step  # is_eval_step reads it: this step gets the final report and checkpoint

        # Report.
        if state.step % cfg.train.log_every == 0 or is_eval_step(state.step):
            train_metrics = meter.flush() | {"train/lr": lr}
            if rank == 0:
                log(_progress_line(state, steps, train_metrics))
            ckpt_now = cfg.train.checkpoint_every and state.step % cfg.train.checkpoint_every == 0
            if is_eval_step(state.step) or ckpt_now:
                save(train_metrics, with_eval=is_eval_step(state.step))
            else:
                reporter.report(asdict(state) | train_metrics)
    return state


def _build(cfg: Config, device: torch.device, rank: int, log: Callable[[str], None]):
    """The run's training split (on ``device``), generator, its EMA copy, optimizer, class queues and
    objective, built in a fixed order (the init seed is drawn before the generator)."""
    d, seed = cfg.drift, cfg.train.seed
    data = load_split(cfg.data, "train", seed=seed)
    data.x = data.x.to(device)
    torch.manual_seed(seeding.derive_seed(seed, purpose="init"))
    net = build_generator(cfg.model, data.sample_shape, data.num_classes).to(device)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    o = cfg.optim
    opt = torch.optim.AdamW(net.parameters(), lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
    queues = ClassQueues(data.y, data.num_classes, seed=seeding.derive_seed(seed, rank=rank, purpose="queues"))
    objective = build_objective(
        d,
        data.sample_shape,
        device,
        cfg.data.dataset,
        train_images=lambda: data.x.cpu(),
        cache_dir=cfg.eval.cache_dir,
        log=log,
        bf16=cfg.train.precision == "bf16",
    )
    return data, net, ema, opt, queues, objective


@torch.no_grad()
def _update_ema(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    for p_ema, p in zip(ema.parameters(), net.parameters()):
        p_ema.lerp_(p, 1 - decay)


class _Meter:
    """Averages of the per-step training metrics over a logging window, and the window's step rate."""

    def __init__(self, images_per_step: int):
        self.images_per_step = images_per_step
        self.rows: list[dict[str, float]] = []
        self.t0 = time.perf_counter()

    def add(self, loss: torch.Tensor, info: dict[str, Any], grad_norm: torch.Tensor, taus) -> None:
        self.rows.append(
            {"train/loss": loss.item(), "train/scale": info["scale"].item(), "train/grad_norm": float(grad_norm)}
            | {f"train/force_ms_{i}": v for i, v in enumerate(info["force_ms"].tolist())}
            | {f"train/tau_{i}": t for i, t in enumerate(taus)}
        )

    def flush(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self.t0
        n = len(self.rows)
        out = {k: sum(r[k] for r in self.rows) / n for k in self.rows[0]}
        out |= {"perf/steps_per_s": n / elapsed, "perf/images_per_s": n * self.images_per_step / elapsed}
        self.rows, self.t0 = [], time.perf_counter()
        return out


def _draw_groups(
    net: Generator, data: Dataset, queues: ClassQueues, d: DriftConfig, G: int, *, seed: int, step: int, rank: int
) -> tuple[GeneratorInputs, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """One step's ``G`` class groups: generator inputs (``d.n_neg`` per group, CFG strength per group),
    positives ``[G, n_pos, *shape]`` from the queues, and the unconditional negatives with their CFG weights."""
    device = data.x.device
    classes = _classes_for_step(data.num_classes, G, seed, step, device)
    alpha = 1 + (d.cfg_alpha_max - 1) * torch.rand(
        G, generator=seeding.generator(seed, step=step, rank=rank, purpose="alpha")
    )
    inputs = net.draw_inputs(
        classes.repeat_interleave(d.n_neg),
        alpha.to(device).repeat_interleave(d.n_neg),
        generator=seeding.generator(seed, step=step, rank=rank, purpose="noise", device=device),
    )
    pos = data.get(queues.sample(classes.cpu(), d.n_pos).to(device))
    neg = w_neg = None
    if d.n_unc > 0:
        neg = data.get(queues.sample_any(G * d.n_unc).to(device)).view(G, d.n_unc, *data.sample_shape)
        w_neg = ((alpha - 1) * (d.n_neg - 1) / d.n_unc).to(device)[:, None].expand(G, d.n_unc)
    return inputs, pos, neg, w_neg


def _classes_for_step(K: int, G: int, seed: int, step: int, device) -> torch.Tensor:
    """All classes when ``G == K``; else ``G`` distinct random classes, the same on every rank."""
    if G == K:
        return torch.arange(K, device=device)
    g = seeding.generator(seed, step=step, purpose="classes")
    return torch.randperm(K, generator=g)[:G].sort().values.to(device)


def _clip_grad_norm(net: torch.nn.Module, clip: float) -> torch.Tensor:
    """The gradient's global norm, clipping it to ``clip`` when ``clip > 0``."""
    if clip > 0:
        return torch.as_tensor(torch.nn.utils.clip_grad_norm_(net.parameters(), clip))
    norms = [p.grad.detach().norm() for p in net.parameters() if p.grad is not None]
    return torch.stack(norms).norm() if norms else torch.zeros(())


def _stop_if_not_finite(loss: torch.Tensor, grad_norm: torch.Tensor, step: int, lr: float, world_size: int) -> None:
    """Stop every rank at the same step if any rank's loss (or the shared gradient) is not finite."""
    bad = torch.tensor(float(not (torch.isfinite(loss) and torch.isfinite(grad_norm))), device=loss.device)
    if world_size > 1:
        dist.all_reduce(bad)
    if bad.item() > 0:
        raise NonFiniteLossError(
            f"loss became {loss.item()} at step {step} (grad norm {grad_norm.item()}, lr {lr:.3g})", step
        )


def _progress_line(state: TrainState, steps: int, m: dict[str, float]) -> str:
    rate = m["perf/steps_per_s"]
    eta = (steps - state.step) / rate if rate > 0 else math.inf
    return (
        f"step {state.step:>7}/{steps} [{100 * state.step / steps:5.1f}%] "
        f"kimg {state.images_seen / 1000:8.1f}  loss {m['train/loss']:.4f}  "
        f"gnorm {m['train/grad_norm']:.3f}  {rate:5.2f} it/s  eta {eta / 60:5.1f} min"
    )
