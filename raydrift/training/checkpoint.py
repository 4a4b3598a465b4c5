"""Training checkpoints: one directory per save, written atomically, holding everything exact resume needs.

A checkpoint directory holds ``state.pt`` (tensors and plain data only: it is loaded with
``torch.load(weights_only=True)``, which refuses anything a pickle could run) and ``checkpoint.json``
(its step, size and SHA-256), so a truncated or altered ``state.pt`` is found before it is used and the
previous good checkpoint is used instead (:func:`load_latest_good`).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from raydrift.data.queues import ClassQueues
from raydrift.errors import UserError

STATE_FILE = "state.pt"
INFO_FILE = "checkpoint.json"  # {"step", "bytes", "sha256"} of state.pt, written with it
REQUIRED_KEYS = ("step", "images_seen", "stage", "model", "ema", "optimizer", "queues", "config")
_STEP_DIR = re.compile(r"^step_(\d{9})$")


T = TypeVar("T")


class CheckpointError(UserError):
    """A checkpoint that cannot be used: missing, truncated, altered, or holding more than tensors and data."""


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
    info = {"step": int(step), "bytes": (tmp / STATE_FILE).stat().st_size, "sha256": _sha256(tmp / STATE_FILE)}
    (tmp / INFO_FILE).write_text(json.dumps(info))
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
    """Load a checkpoint dir (or its ``state.pt``) onto the CPU after checking it; a :class:`CheckpointError`
    says what is wrong with one that cannot be used. Nothing in the file is executed (``weights_only``)."""
    path = Path(path)
    file = path / STATE_FILE if path.is_dir() else path
    if not file.is_file():
        raise CheckpointError(f"no checkpoint at {path} (expected {STATE_FILE} inside a checkpoint directory)")
    info = _read_info(file.parent / INFO_FILE)
    if info is not None:
        size = file.stat().st_size
        if size != info.get("bytes") or _sha256(file) != info.get("sha256"):
            raise CheckpointError(
                f"{file} is damaged: {size} bytes whose SHA-256 does not match the {info.get('bytes')} bytes "
                f"recorded in {INFO_FILE} when it was saved (truncated or altered since)"
            )
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{file} holds objects other than tensors and plain data, so it was not loaded (unpickling them could "
            f"run code); only load checkpoints that raydrift wrote ({_first_line(err)})"
        ) from None
    except Exception as err:  # zip/pickle framing errors of a cut or garbled file
        raise CheckpointError(
            f"{file} is damaged or not a checkpoint ({type(err).__name__}: {_first_line(err)})"
        ) from None
    missing = [k for k in REQUIRED_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"{file} is not a raydrift training checkpoint (no {', '.join(missing)})")
    return state


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """The step of the checkpoint directory ``path`` from its ``checkpoint.json`` or its ``step_<n>`` name;
    None when neither says (an older checkpoint: load it to know)."""
    path = Path(path)
    info = _read_info(path / INFO_FILE)
    if info is not None and isinstance(info.get("step"), int):
        return info["step"]
    m = _STEP_DIR.match(path.name)
    return int(m.group(1)) if m else None


def find_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Every checkpoint directory (one holding ``state.pt``) anywhere under ``root``, newest step first.

    Partial saves are skipped: a directory whose path (below ``root``) has a part starting with ``.``, e.g.
    ``.tmp_step_*``. The order is by step, never by file time (a copy may not keep times); a checkpoint whose
    step no file records is loaded to read it, and one that does not load sorts last."""
    root = Path(root)
    found = []
    for file in root.rglob(STATE_FILE):
        rel = file.parent.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        step = checkpoint_step(file.parent)
        if step is None:
            try:
                step = int(load_checkpoint(file.parent)["step"])
            except CheckpointError:
                step = -1
        found.append((step, file.parent))
    return [p for _, p in sorted(found, key=lambda sp: (sp[0], str(sp[1])), reverse=True)]


@dataclass
class Found:
    """A checkpoint that loaded: its local directory and its state (set ``state`` to None to free it)."""

    path: Path
    state: dict[str, Any] | None


@contextmanager
def open_latest_good(
    candidates: Iterable[T],
    log: Callable[[str], None] = print,
    *,
    as_directory: Callable[[T], AbstractContextManager[str | os.PathLike]] = nullcontext,
    label: Callable[[T], Any] = str,
) -> Iterator[Found | None]:
    """The first of ``candidates`` (newest first) that loads, open as a local directory for the ``with``
    block (``as_directory``: how a candidate becomes one, e.g. ``ray.train.Checkpoint.as_directory``); every
    one skipped is logged with the reason (``label`` names it). None when there are no candidates;
    :class:`CheckpointError` when none loads. So a damaged newest checkpoint costs one fallback."""
    problems = []
    for candidate in candidates:
        with as_directory(candidate) as local:
            try:
                found = Found(Path(local), load_checkpoint(local))
            except CheckpointError as err:
                problems.append(str(err))
                log(f"warning: skipping checkpoint {label(candidate)}: {err}; trying the previous one")
                continue
            if problems:
                step = found.state["step"]
                log(f"falling back to checkpoint {label(candidate)} (step {step}), the newest one that loads")
            yield found
            return
    if problems:
        raise CheckpointError("no usable checkpoint: " + "; ".join(problems))
    yield None


def load_latest_good(
    candidates: Iterable[Path], log: Callable[[str], None] = print
) -> tuple[Path, dict[str, Any]] | None:
    """:func:`open_latest_good` over local checkpoint directories: ``(path, state)`` of the first that loads."""
    with open_latest_good(candidates, log) as found:
        return None if found is None else (found.path, found.state)


def _sha256(file: Path) -> str:
    h = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_info(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0][:200]


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
