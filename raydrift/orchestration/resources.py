"""Does a run fit the cluster? Checked before anything starts, so a request the cluster cannot meet fails in
seconds with what is there, instead of Ray Train waiting for workers that never get placed.

A worker needs ``cpus_per_worker`` CPUs (and ``gpus_per_worker`` GPUs with ``use_gpu``) on one node; the run
needs ``num_workers`` of them at once. Without a cluster (``--dry-run`` with no ``--address``) the check is
against this machine, which is what a local Ray cluster gets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from raydrift.config import Config
from raydrift.errors import UserError


class ResourcesError(UserError):
    """The run asks for more CPUs or GPUs than the cluster has."""


@dataclass
class Node:
    cpus: float
    gpus: float


def local_nodes() -> list[Node]:
    """This machine as the one node of the local cluster a run would start."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        import torch

        gpus = torch.cuda.device_count()
    except Exception:  # no usable CUDA driver: no GPU
        gpus = 0
    return [Node(float(cpus), float(gpus))]


def cluster_nodes() -> list[Node]:
    """The alive nodes of the Ray cluster this process is connected to."""
    import ray

    return [
        Node(float(n["Resources"].get("CPU", 0)), float(n["Resources"].get("GPU", 0)))
        for n in ray.nodes()
        if n.get("Alive")
    ]


def check_fits(cfg: Config, nodes: list[Node], where: str = "the cluster", what: str = "this run") -> None:
    """Raise :class:`ResourcesError` unless the workers of ``cfg`` can all be placed on ``nodes`` at once."""
    s = cfg.scaling
    gpus = s.gpus_per_worker if s.use_gpu else 0.0
    if gpus and not any(n.gpus for n in nodes):
        raise ResourcesError(
            f"{what} asks for {gpus:g} GPU per worker (scaling.use_gpu=true, --gpu), but {where} has no "
            f"GPU ({_total(nodes)}); set scaling.use_gpu=false (drop --gpu) to train on the CPU, or connect to a "
            "cluster with GPUs (--address)"
        )
    fit = sum(_workers_on(n, s.cpus_per_worker, gpus) for n in nodes)
    if fit >= s.num_workers:
        return
    need = f"{s.num_workers} worker(s) x ({s.cpus_per_worker:g} CPU" + (f" + {gpus:g} GPU" if gpus else "") + ")"
    if fit:
        advice = f"use --workers {int(fit)}"
    else:
        biggest = max(nodes, key=lambda n: (n.cpus, n.gpus))
        advice = f"lower scaling.cpus_per_worker to at most {biggest.cpus:g}" + (
            f" and scaling.gpus_per_worker to at most {biggest.gpus:g}" if gpus else ""
        )
    raise ResourcesError(
        f"{what} needs {need} at once, but {where} has {_total(nodes)}, room for {int(fit)} such worker(s): "
        f"{advice}, or connect to a bigger cluster with --address"
    )


def _workers_on(n: Node, cpus: float, gpus: float) -> float:
    """How many workers of ``cpus`` CPUs and ``gpus`` GPUs one node holds."""
    by_cpu = n.cpus // cpus if cpus else float("inf")
    by_gpu = n.gpus // gpus if gpus else float("inf")
    return min(by_cpu, by_gpu)


def _total(nodes: list[Node]) -> str:
    cpus, gpus = sum(n.cpus for n in nodes), sum(n.gpus for n in nodes)
    return f"{cpus:g} CPU(s) and {gpus:g} GPU(s) on {len(nodes)} node(s)"
