"""Optional W&B logging from rank 0: one run per seed, one group per configuration, stable run ids.

Never required: mode ``disabled`` imports nothing; ``offline`` needs no key and no network (it sets
``WANDB_MODE=offline``, which wandb needs in the environment); ``online`` without a key or network falls
back to offline with a warning instead of failing or hanging.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

from raydrift.config import Config, to_dict

INIT_TIMEOUT_S = 30


def run_id(*parts: str) -> str:
    """A W&B-safe, stable id from e.g. (experiment, trial id): a resumed trial continues the same run."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(p for p in parts if p)).strip("-")[:120]


class WandbReporter:
    """Wraps a reporter: forwards everything, and logs metrics and sample grids to W&B."""

    def __init__(self, inner, cfg: Config, *, run_dir: Path, id: str, group: str, name: str, tags=()):
        self.inner = inner
        self.run = start_run(cfg, run_dir=run_dir, id=id, group=group, name=name, tags=tags)

    def checkpoint_root(self) -> Path:
        return self.inner.checkpoint_root()

    def report(self, metrics: dict[str, Any], checkpoint: Path | None = None) -> None:
        self.inner.report(metrics, checkpoint)
        if self.run is None:
            return
        import wandb

        data = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if metrics.get("eval/grid"):
            data["samples"] = wandb.Image(metrics["eval/grid"], caption=f"step {metrics.get('step')}")
        self.run.log(data)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


def start_run(cfg: Config, *, run_dir: Path, id: str, group: str, name: str, tags=()):
    """``wandb.init`` per ``cfg.wandb`` (None when disabled or when W&B cannot start)."""
    mode = cfg.wandb.mode
    if mode == "disabled":
        return None
    try:
        import wandb
    except ImportError:
        warnings.warn("wandb is not installed; W&B logging is off", stacklevel=2)
        return None
    if mode == "online" and not (os.environ.get("WANDB_API_KEY") or _has_netrc_key()):
        warnings.warn("wandb.mode=online but no W&B API key is configured; logging offline instead", stacklevel=2)
        mode = "offline"
    if mode == "offline":
        os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("WANDB_SILENT", "true")
    run_dir.mkdir(parents=True, exist_ok=True)
    kwargs = dict(
        project=cfg.wandb.project,
        entity=cfg.wandb.entity or None,
        id=id,
        name=name,
        group=group or None,
        tags=list(tags),
        config=to_dict(cfg),
        dir=str(run_dir),
        resume="allow",
        mode=mode,
        settings=wandb.Settings(init_timeout=INIT_TIMEOUT_S, console="off", silent=True),
    )
    try:
        run = wandb.init(**kwargs)
    except Exception as err:  # no network, bad key, service start failure: keep training
        if mode == "offline":
            warnings.warn(f"W&B could not start ({err}); logging is off", stacklevel=2)
            return None
        warnings.warn(f"W&B online failed ({err}); logging offline instead", stacklevel=2)
        os.environ["WANDB_MODE"] = "offline"
        kwargs["mode"] = "offline"
        try:
            run = wandb.init(**kwargs)
        except Exception as err2:
            warnings.warn(f"W&B could not start ({err2}); logging is off", stacklevel=2)
            return None
    run.define_metric("step")
    run.define_metric("*", step_metric="step")
    return run


def _has_netrc_key() -> bool:
    netrc = Path(os.environ.get("NETRC", "~/.netrc")).expanduser()
    return netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore")
