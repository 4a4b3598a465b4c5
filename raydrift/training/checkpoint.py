"""Training checkpoints: one directory per save, written atomically, holding everything exact resume needs."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from raydrift.data.queues import ClassQueues

STATE_FILE = "state.pt"
_STEP_DIR = re.compile(r"^step_(\d{9})$")


def step_dir(root: Path, step: int) -> Path:
    return Path(root) / f"step_{step:09d}"


def save_checkpoint(root: str | os.PathLike, step: int, state: dict[str, Any], keep: int | None = None) -> Path:
    """Write ``state`` to ``root/step_<step>/state.pt`` via a temporary directory and a rename.

    A crash mid-write leaves no partial checkpoint behind. With ``keep``, older step dirs beyond the
    newest ``keep`` are removed.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = step_dir(root, step)
    tmp = root / f".tmp_{final.name}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save(state, tmp / STATE_FILE)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    if keep is not None:
        for old in list_checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Complete checkpoint dirs under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STEP_DIR.match(p.name) and (p / STATE_FILE).exists()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint dir (or its ``state.pt``) onto the CPU."""
    path = Path(path)
    file = path / STATE_FILE if path.is_dir() else path
    if not file.exists():
        raise FileNotFoundError(f"no checkpoint at {path} (expected {STATE_FILE} inside a step_<n> directory)")
    return torch.load(file, map_location="cpu", weights_only=False)


def training_state(
    progress: dict[str, int],
    *,
    net: torch.nn.Module,
    ema: torch.nn.Module,
    opt: torch.optim.Optimizer,
    queues: ClassQueues,
    config: dict[str, Any],
    world_size: int = 1,
) -> dict[str, Any]:
    """Everything exact resume needs: ``progress`` (step, images_seen, stage), the generator, its EMA, the
    optimizer, every rank's positive queues (gathered: a collective, so every rank calls this) and the config."""
    queue_states = [queues.state_dict()]
    if world_size > 1:
        queue_states = [None] * world_size
        dist.all_gather_object(queue_states, queues.state_dict())
    return dict(progress) | {
        "model": net.state_dict(),
        "ema": ema.state_dict(),
        "optimizer": opt.state_dict(),
        "queues": queue_states,
        "config": config,
    }


def restore_training_state(
    ckpt: dict[str, Any],
    *,
    net: torch.nn.Module,
    ema: torch.nn.Module,
    opt: torch.optim.Optimizer,
    queues: ClassQueues,
    rank: int = 0,
) -> dict[str, int]:
    """Load a :func:`training_state` into the live objects; returns its progress with ``stage`` + 1."""
    net.load_state_dict(ckpt["model"])
    ema.load_state_dict(ckpt["ema"])
    opt.load_state_dict(ckpt["optimizer"])
    if rank < len(ckpt["queues"]):  # a resume on more workers than saved starts the extra queues fresh
        queues.load_state_dict(ckpt["queues"][rank])
    return {"step": ckpt["step"], "images_seen": ckpt["images_seen"], "stage": ckpt["stage"] + 1}
