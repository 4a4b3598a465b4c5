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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from . import seeding
from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config, apply_overrides, to_dict
from .data import Dataset, load_dataset
from .drift import anneal_temperatures
from .exchange import gather_step
from .models import Generator
from .objective import build_objective
from .queues import ClassQueues


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; the run stops (a study marks the trial failed and goes on)."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


class Reporter(Protocol):
    """Where a worker's metrics and checkpoints go. Every rank calls ``report`` the same number of times."""

    def checkpoint_root(self) -> Path: ...

    def report(self, metrics: dict[str, Any], checkpoint: Path | None = None) -> None: ...


class Evaluator(Protocol):
    def evaluate(self, generator: Generator, step: int) -> dict[str, Any]: ...


@dataclass
class TrainState:
    step: int = 0
    images_seen: int = 0
    stage: int = 0  # 0 for a fresh run, +1 per resume
    extra: dict[str, Any] = field(default_factory=dict)


def build_generator(cfg: Config, sample_shape: tuple[int, ...], num_classes: int) -> Generator:
    from .models import DiTGenerator, MLPGenerator

    m = cfg.model
    if m.arch == "mlp":
        return MLPGenerator(
            sample_shape,
            num_classes,
            noise_dim=m.noise_dim,
            hidden=m.dim,
            depth=m.depth,
            style_codebooks=m.style_codebooks,
            codebook_size=m.codebook_size,
        )
    if len(sample_shape) != 3:
        raise ValueError(f"model.arch=dit needs image data [C, H, W], got samples of shape {sample_shape}")
    return DiTGenerator(
        sample_shape,
        num_classes,
        patch_size=m.patch_size,
        dim=m.dim,
        depth=m.depth,
        heads=m.heads,
        mlp_ratio=m.mlp_ratio,
        style_codebooks=m.style_codebooks,
        codebook_size=m.codebook_size,
    )


def load_training_data(cfg: Config) -> Dataset:
    d = cfg.data
    return load_dataset(
        d.dataset,
        "train",
        d.root or None,
        download=d.download,
        toy=d.toy,
        toy_size=d.toy_size,
        seed=cfg.train.seed,
    )


def learning_rate(cfg: Config, step: int) -> float:
    """Linear warm-up over ``optim.warmup_steps``, then constant."""
    warm = cfg.optim.warmup_steps
    return cfg.optim.lr * (min(1.0, (step + 1) / warm) if warm else 1.0)


def train(
    cfg: Config,
    reporter: Reporter,
    *,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str = "cpu",
    resume_from: Path | None = None,
    evaluator_factory: Callable[[Config, Dataset, torch.device], Evaluator] | None = None,
    log: Callable[[str], None] = print,
) -> TrainState:
    """Train ``cfg`` on this worker until ``cfg.train.steps``; returns the final state."""
    device = torch.device(device)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed = cfg.train.seed

    # Set up data, generator, EMA, optimizer.
    data = load_training_data(cfg)
    data.x = data.x.to(device)
    K = data.num_classes
    torch.manual_seed(seeding.derive_seed(seed, purpose="init"))
    net = build_generator(cfg, data.sample_shape, K).to(device)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    opt = torch.optim.AdamW(
        net.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay
    )
    queues = ClassQueues(data.y, K, seed=seeding.derive_seed(seed, rank=rank, purpose="queues"))
    if cfg.drift.space == "feature" and cfg.drift.encoder == "mae" and cfg.drift.encoder_weights == "auto":
        from .evaluation import default_cache_dir
        from .mae import cached_mae

        weights = cached_mae(
            cfg.data.dataset,
            data.x.cpu(),
            cfg.eval.cache_dir or default_cache_dir(),
            steps=cfg.drift.encoder_auto_steps,
            device=device,
            log=log,
        )
        cfg = apply_overrides(cfg, {"drift.encoder_weights": str(weights)})
    objective = build_objective(cfg.drift, data.sample_shape, device, cfg.data.dataset)
    state = TrainState()

    # Resume.
    if resume_from is not None:
        ckpt = load_checkpoint(resume_from)
        net.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["optimizer"])
        if rank < len(ckpt["queues"]):  # a resume on more workers than saved starts the extra queues fresh
            queues.load_state_dict(ckpt["queues"][rank])
        state = TrainState(step=ckpt["step"], images_seen=ckpt["images_seen"], stage=ckpt["stage"] + 1)
        log(f"resumed from {resume_from} at step {state.step} (stage {state.stage})")

    model = net
    if world_size > 1:
        model = DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
    evaluator = evaluator_factory(cfg, data, device) if (evaluator_factory and rank == 0) else None

    d = cfg.drift
    G = min(d.classes_per_step, K)
    images_per_step = G * d.n_neg * world_size
    eval_every, steps = cfg.eval.every, cfg.train.steps
    window: list[dict[str, float]] = []
    t_window = time.perf_counter()

    def is_eval_step(step: int) -> bool:
        return step == steps or (eval_every > 0 and step % eval_every == 0)

    def checkpoint_state() -> dict[str, Any]:
        queue_states = [queues.state_dict()]
        if world_size > 1:
            gathered: list[Any] = [None] * world_size
            dist.all_gather_object(gathered, queues.state_dict())
            queue_states = gathered
        return {
            "step": state.step,
            "images_seen": state.images_seen,
            "stage": state.stage,
            "model": net.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": opt.state_dict(),
            "queues": queue_states,
            "config": to_dict(cfg),
        }

    def evaluate_and_checkpoint(extra: dict[str, Any], *, with_eval: bool) -> None:
        metrics = dict(extra)
        if evaluator is not None and with_eval:
            metrics.update(evaluator.evaluate(ema, state.step))
        ckpt_state = checkpoint_state()
        path = None
        if rank == 0:
            path = save_checkpoint(reporter.checkpoint_root(), state.step, ckpt_state, keep=cfg.train.keep_checkpoints)
        reporter.report(_progress(state) | metrics, checkpoint=path)

    if state.step == 0 and state.stage == 0 and eval_every > 0:
        evaluate_and_checkpoint({}, with_eval=True)

    while state.step < steps:
        step = state.step
        # Draw this step's groups: classes (shared by all ranks), CFG strengths, noise, positives.
        classes = _classes_for_step(K, G, seed, step, device)
        g_alpha = seeding.generator(seed, step=step, rank=rank, purpose="alpha")
        alpha = 1 + (d.cfg_alpha_max - 1) * torch.rand(G, generator=g_alpha)
        labels = classes.repeat_interleave(d.n_neg)
        inputs = net.draw_inputs(
            labels,
            alpha.to(device).repeat_interleave(d.n_neg),
            generator=seeding.generator(seed, step=step, rank=rank, purpose="noise", device=device),
        )
        pos = data.get(queues.sample(classes.cpu(), d.n_pos).to(device))  # [G, n_pos, *shape]
        neg = w_neg = None
        if d.n_unc > 0:
            neg = data.get(queues.sample_any(G * d.n_unc).to(device)).view(G, d.n_unc, *data.sample_shape)
            w_neg = ((alpha - 1) * (d.n_neg - 1) / d.n_unc).to(device)[:, None].expand(G, d.n_unc)
        taus = anneal_temperatures(d.temperatures, step, d.anneal_rate, d.anneal_floor)

        # Generate, drift, update.
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step)
        x = model(inputs.noise, inputs.labels, inputs.alpha, inputs.style).view(G, d.n_neg, *data.sample_shape)
        scale = 1
        if d.exchange == "gather" and world_size > 1:
            x, pos, neg, w_neg, scale = gather_step(x, pos, neg, w_neg)
        loss, info = objective(x, pos, neg, w_neg, taus)
        opt.zero_grad(set_to_none=True)
        (loss * scale).backward()
        grad_norm = torch.as_tensor(
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.optim.grad_clip)
            if cfg.optim.grad_clip > 0
            else _grad_norm(net)
        )
        # Stop every rank at the same step if any rank's loss (or the shared gradient) is not finite.
        bad = torch.tensor(float(not (torch.isfinite(loss) and torch.isfinite(grad_norm))), device=device)
        if world_size > 1:
            dist.all_reduce(bad)
        if bad.item() > 0:
            raise NonFiniteLossError(
                f"loss became {loss.item()} at step {step} (grad norm {grad_norm.item()}, "
                f"lr {learning_rate(cfg, step):.3g})",
                step,
            )
        opt.step()

        # Update EMA.
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), net.parameters()):
                p_ema.lerp_(p, 1 - cfg.optim.ema_decay)

        state.step += 1
        state.images_seen += images_per_step
        window.append(
            {
                "train/loss": loss.item(),
                "train/scale": info["scale"].item(),
                "train/grad_norm": float(grad_norm),
            }
            | {f"train/force_ms_{i}": v for i, v in enumerate(info["force_ms"].tolist())}
            | {f"train/tau_{i}": t for i, t in enumerate(taus)}
        )

        # Report.
        log_now = state.step % cfg.train.log_every == 0 or is_eval_step(state.step)
        if log_now:
            elapsed = time.perf_counter() - t_window
            train_metrics = {k: sum(w[k] for w in window) / len(window) for k in window[0]}
            train_metrics |= {
                "train/lr": learning_rate(cfg, step),
                "perf/steps_per_s": len(window) / elapsed,
                "perf/images_per_s": len(window) * images_per_step / elapsed,
            }
            if rank == 0:
                log(_progress_line(state, steps, train_metrics))
            ckpt_now = cfg.train.checkpoint_every and state.step % cfg.train.checkpoint_every == 0
            if is_eval_step(state.step) or ckpt_now:
                evaluate_and_checkpoint(train_metrics, with_eval=is_eval_step(state.step))
            else:
                reporter.report(_progress(state) | train_metrics)
            window, t_window = [], time.perf_counter()
    return state


def _classes_for_step(K: int, G: int, seed: int, step: int, device) -> torch.Tensor:
    """All classes when ``G == K``; else ``G`` distinct random classes, the same on every rank."""
    if G == K:
        return torch.arange(K, device=device)
    g = seeding.generator(seed, step=step, purpose="classes")
    return torch.randperm(K, generator=g)[:G].sort().values.to(device)


def _grad_norm(net: torch.nn.Module) -> torch.Tensor:
    norms = [p.grad.detach().norm() for p in net.parameters() if p.grad is not None]
    return torch.stack(norms).norm() if norms else torch.zeros(())


def _progress(state: TrainState) -> dict[str, Any]:
    return {"step": state.step, "images_seen": state.images_seen, "stage": state.stage}


def _progress_line(state: TrainState, steps: int, m: dict[str, float]) -> str:
    rate = m["perf/steps_per_s"]
    eta = (steps - state.step) / rate if rate > 0 else math.inf
    return (
        f"step {state.step:>7}/{steps} [{100 * state.step / steps:5.1f}%] "
        f"kimg {state.images_seen / 1000:8.1f}  loss {m['train/loss']:.4f}  "
        f"gnorm {m['train/grad_norm']:.3f}  {rate:5.2f} it/s  eta {eta / 60:5.1f} min"
    )
