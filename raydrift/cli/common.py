"""Helpers the commands share: checking that a config's data is there, and a run's result in a few lines."""

from __future__ import annotations

import os
from typing import Any

import click

from raydrift.config import Config
from raydrift.errors import UsageError, check_name


def name_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """click callback of ``--name``: a plain directory name (see :func:`raydrift.errors.check_name`)."""
    if value is None:
        return None
    try:
        return check_name(value, "experiment name" if ctx.command.name == "tune" else "run name")
    except UsageError as err:
        raise click.BadParameter(str(err)) from None


def check_data(cfg: Config) -> None:
    """Load the training split once, so a missing dataset fails here with where to get it; and, for
    drift.space=feature, check that the encoder's weights setting can work."""
    from raydrift.data.datasets import DatasetNotFoundError, load_split

    if cfg.drift.space == "feature":
        from raydrift.nets.encoders import check_weights_setting

        check_weights_setting(cfg.drift.encoder, cfg.drift.encoder_weights, cfg.data.dataset)

    try:
        load_split(cfg.data, "train", seed=cfg.train.seed)
    except DatasetNotFoundError as err:
        raise click.ClickException(str(err)) from None


def run_summary(history: list[dict[str, Any]]) -> str:
    """The last evaluation of a run's history with its yardsticks, indented for the terminal."""
    evals = [r for r in history if r.get("eval/fid") is not None]
    if not evals:
        return "no evaluation recorded"
    last = evals[-1]
    parts = [
        f"step {last['step']}: FID {last['eval/fid']:.2f} ({last['eval/fid_net']}, {last['eval/fid_samples']} samples "
        f"vs {last['eval/fid_ref']})",
        f"class-mean generator FID {last['eval/fid_classmean']:.2f}, real-data FID {last['eval/fid_real']:.2f}"
        + (f" ({last['eval/fid_real_n']} held-out images)" if "eval/fid_real_n" in last else ""),
        f"within-class diversity {last['eval/diversity']:.3f} (real {last['eval/diversity_real']:.3f})",
    ]
    if last.get("eval/is") is not None:
        parts.append(f"IS {last['eval/is']:.2f}")
    if last.get("eval/grid"):
        parts.append(f"samples: {last['eval/grid']}")
    return "\n  ".join(parts)


def preflight(cfg: Config, address: str | None, what: str = "this run") -> None:
    """Before anything is written: the cluster at ``address`` answers, or, for a local cluster, the workers of
    ``cfg`` fit this machine (a remote cluster's resources are checked once connected)."""
    from raydrift.orchestration.ray_train import check_reachable
    from raydrift.orchestration.resources import check_fits, local_nodes

    address = address or os.environ.get("RAY_ADDRESS")  # set inside `ray job submit`: the cluster, not here
    if address:
        check_reachable(address)
    else:
        check_fits(cfg, local_nodes(), "this machine (a local Ray cluster)", what)


def check_resources(cfg: Config, address: str | None, what: str = "this run") -> None:
    """For a dry run: fail if the workers of ``cfg`` do not fit this machine when no cluster is given (what a
    local Ray cluster gets). A cluster at ``address`` is not checked: its autoscaler may add the nodes a run
    asks for (GPU workers of `cluster/gpu.yaml` start at zero); only an explicit ``host:port`` must answer."""
    from raydrift.orchestration.ray_train import check_reachable
    from raydrift.orchestration.resources import check_fits, local_nodes

    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        check_reachable(address)
    else:
        check_fits(cfg, local_nodes(), "this machine (a local Ray cluster)", what)


# Config keys that name files or directories on the machine the command runs on.
PATH_KEYS = ("data.root", "drift.encoder_weights", "eval.inception_weights", "eval.cache_dir", "output_dir")
_NOT_PATHS = {"", "auto"}


def absolute_paths(sets: tuple[str, ...] | list[str]) -> list[str]:
    """``--set`` items with relative paths made absolute against this process's working directory.

    Ray runs workers and Tune trials in directories of their own, where ``data.root=../data`` would point
    somewhere else (or, on a cluster, nowhere); the user meant the directory they typed it in.
    """
    out = []
    for item in sets:
        key, sep, value = item.partition("=")
        value = value.strip()
        if sep and key.strip() in PATH_KEYS and value not in _NOT_PATHS and "://" not in value:
            value = os.path.abspath(os.path.expanduser(value))
            item = f"{key.strip()}={value}"
        out.append(item)
    return out
