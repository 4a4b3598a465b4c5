"""Ray Train wiring: one run = one ``TorchTrainer`` whose workers each run :func:`raydrift.training.loop.train`.

Rank 0 appends the metric history to the run directory and writes sample grids; every rank calls
``ray.train.report`` the same number of times (Train V2 requires it); checkpoints are reported from
rank 0 and persisted by Ray under ``<storage>/<run name>/``, so a run restarted with the same name (or
a worker restarted after a failure) continues from the latest one.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from raydrift.config import Config, from_dict, to_dict
from raydrift.errors import UserError
from raydrift.training.rundir import CONFIG_FILE, MARKER_FILE, META_FILE, METRICS_FILE, append_record, marker, run_meta

from .resources import check_fits, cluster_nodes
from .storage import RunDirMirror, is_uri, read_text, remove_created, write_json_files

# Set before Ray starts; the driver's RAY_TRAIN_* variables reach the controller and workers.
RAY_ENV_DEFAULTS = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",  # otherwise every worker print appears twice
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1",  # ray.train.report takes ~this long (default 2 s)
    "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "120",  # fail instead of waiting forever for resources
    "RAY_DEDUP_LOGS": "0",
}


def set_ray_env() -> None:
    for key, value in RAY_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


def init_ray(address: str | None = None, *, num_cpus: int | None = None, temp_dir: str | None = None) -> None:
    """Connect to ``address`` (e.g. ``auto``) or start a local cluster (with the dashboard, which Train V2's
    cleanup of stopped trials relies on). Does nothing when Ray is already initialised."""
    import ray

    set_ray_env()
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")  # e.g. inside `ray job submit`
    if address:
        check_reachable(address)
        try:
            context = ray.init(address=address, log_to_driver=True)
        except Exception as err:
            raise RayStartError(
                f"could not connect to the Ray cluster at {address} ({type(err).__name__}: {_first_line(err)}). "
                f"Check that the cluster is up (`ray status --address {address}` on its head node) and that this "
                "machine can reach it, or leave --address out (and unset RAY_ADDRESS) to start a local cluster."
            ) from None
        # An inherited RAY_API_SERVER_ADDRESS (e.g. from a local cluster this shell started earlier) would
        # send Train's state-API calls to that other cluster: point it at the one we joined.
        if context.dashboard_url:
            url = context.dashboard_url
            os.environ["RAY_API_SERVER_ADDRESS"] = url if "://" in url else f"http://{url}"
        return
    # Train V2 frees a stopped trial's workers from an actor that finds the state API by auto-detecting
    # the local cluster; with a second Ray instance on the machine that fails and the resources leak
    # (the next trials wait forever). Pin the address for every process of this cluster instead.
    port = _free_port()
    os.environ["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{port}"
    try:
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=port,
            object_store_memory=256 * 2**20,
            _temp_dir=temp_dir,
            log_to_driver=True,
            configure_logging=True,
            logging_level="WARNING",
        )
    except Exception as err:  # e.g. "The current node timed out during startup" on a loaded machine
        if ray.is_initialized():
            ray.shutdown()
        raise RayStartError(
            f"could not start a local Ray cluster ({type(err).__name__}: {_first_line(err)}). This happens when "
            "the machine is too loaded or short of memory for Ray's processes to start in time (another study or "
            f"a test suite running), or when the temp directory ({temp_dir or os.environ.get('RAY_TMPDIR', '/tmp')}) "
            "is full or cannot be written. Try again when the machine is less busy, point RAY_TMPDIR at a "
            "directory with room, or run on a started cluster with --address."
        ) from None


class RayStartError(UserError):
    """Ray could not be started or reached; the message says what to try."""


CONNECT_TIMEOUT_S = float(os.environ.get("RAYDRIFT_CONNECT_TIMEOUT_S", "10"))


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail within ``timeout_s`` if nothing listens at ``address`` (``host:port`` or ``ray://host:port``);
    ``ray.init`` itself retries an unreachable address for minutes. ``auto`` is left to Ray."""
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as err:
        reason = "no answer" if isinstance(err, TimeoutError) else (err.strerror or str(err))
        raise RayStartError(
            f"cannot reach a Ray cluster at {address} ({reason}; waited up to {timeout_s:g} s). Check the address "
            "(the head node's IP and GCS port, 6379 by default; `ray status` on the head prints it), that the "
            "cluster is up and that a firewall lets this machine in, or leave --address out to start a local cluster."
        ) from None


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0][:300]


def shutdown_ray() -> None:
    """Disconnect from Ray (and stop the local cluster this process started, if it did)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayReporter:
    """Reporter for a Ray Train worker (see :class:`raydrift.training.loop.Reporter`)."""

    def __init__(self, rank: int, run_dir: str | None):
        self.rank = rank
        # rank 0 writes the run's files where every node sees them: in place on a shared path, else into a
        # local copy that is uploaded after every report (see raydrift.storage)
        self.mirror = RunDirMirror(run_dir) if rank == 0 and run_dir and is_uri(run_dir) else None
        self.run_dir = self.mirror.local if self.mirror else Path(run_dir) if run_dir and not is_uri(run_dir) else None
        _purge_orphaned_tmp()
        self._tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-"))

    def checkpoint_root(self) -> Path:
        return self._tmp

    def report(self, metrics: dict[str, Any], checkpoint: Path | None = None) -> None:
        import ray.train

        if self.rank == 0 and self.run_dir is not None:
            append_record(self.run_dir, metrics)
            if self.mirror:
                self.mirror.sync()
        ckpt = ray.train.Checkpoint.from_directory(str(checkpoint)) if checkpoint else None
        ray.train.report(metrics, checkpoint=ckpt)  # uploads the checkpoint before returning
        if checkpoint:
            shutil.rmtree(checkpoint, ignore_errors=True)

    def finish(self) -> None:
        if self.mirror:
            self.mirror.close()
        shutil.rmtree(self._tmp, ignore_errors=True)


TMP_PREFIX = "raydrift-ckpt-"


def _purge_orphaned_tmp() -> None:
    """Remove checkpoint staging dirs of worker processes that are gone (e.g. killed by early stopping)."""
    for d in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*-*"):
        pid = d.name[len(TMP_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(d, ignore_errors=True)


def quiet_library_logs() -> None:
    """Keep a run's output readable: Ray Train logs every report (with all metrics) at INFO from each worker,
    and torch warns "No CUDA runtime is found, using CUDA_HOME=..." on CPU machines that have a CUDA
    toolkit (when torch.compile loads its C++ extension helper), which says nothing about a CPU run."""
    import logging

    logging.getLogger("ray.train").setLevel(logging.WARNING)
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)


def train_worker(loop_config: dict[str, Any]) -> None:
    """Per-worker entry point of the ``TorchTrainer``.

    ``loop_config``: ``config`` (the run's config dict), ``run_dir`` (where rank 0 writes the history and
    grids), ``wandb`` (``id``, ``group``, ``name`` of the W&B run). A non-finite loss ends training on every
    rank at the same step with a final report ``{"failure": reason}`` instead of an exception, so Ray Train
    does not restart a run that would fail again; the caller turns it into a failed run.
    """
    import ray.train
    import ray.train.torch

    from raydrift.evaluation.evaluator import Evaluator
    from raydrift.training.loop import NonFiniteLossError, train

    quiet_library_logs()
    cfg = from_dict(loop_config["config"])
    run_dir = loop_config.get("run_dir")
    ctx = ray.train.get_context()
    rank, world_size = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    if cfg.train.threads == 0 and device.type == "cpu":
        import torch

        torch.set_num_threads(max(1, int(cfg.scaling.cpus_per_worker)))

    reporter = base = RayReporter(rank, run_dir)
    local_dir = base.run_dir  # rank 0: the run dir, or a local copy of it when it is a URI

    def make_evaluator(cfg, data, device):
        return Evaluator(cfg, data, device, local_dir / "samples" if local_dir else None).evaluate

    if rank == 0 and cfg.wandb.mode != "disabled" and local_dir:
        from .wandb_logger import WandbReporter

        w = loop_config.get("wandb", {})
        reporter = WandbReporter(
            reporter,
            cfg,
            run_dir=local_dir,
            id=w.get("id", cfg.run_name),
            group=w.get("group", ""),
            name=w.get("name", cfg.run_name),
        )
    log = (lambda s: print(s, flush=True)) if rank == 0 else (lambda s: None)
    try:
        with usable_checkpoint(ray.train.get_checkpoint(), log) as ckpt_dir:
            train(
                cfg,
                reporter,
                rank=rank,
                world_size=world_size,
                device=device,
                resume_from=Path(ckpt_dir) if ckpt_dir else None,
                evaluator_factory=make_evaluator,
                log=log,
            )
    except NonFiniteLossError as err:
        reporter.report({"step": err.step, "failure": str(err)})
    finally:
        if reporter is not base:
            reporter.finish()
        base.finish()


@contextmanager
def usable_checkpoint(checkpoint, log: Callable[[str], None]) -> Iterator[Path | None]:
    """The local directory of ``checkpoint`` (a ``ray.train.Checkpoint``, or None) if it loads, else of the
    newest older checkpoint of the same run that does (:func:`~raydrift.training.checkpoint.open_latest_good`),
    so a damaged newest checkpoint costs one fallback instead of every ``max_failures`` retry."""
    from raydrift.training.checkpoint import open_latest_good

    candidates = [checkpoint, *older_checkpoints(checkpoint)] if checkpoint is not None else []
    with open_latest_good(candidates, log, as_directory=lambda c: c.as_directory(), label=lambda c: c.path) as found:
        if found is not None:
            found.state = None  # the loop loads it again on every rank; don't hold two copies
        yield found.path if found is not None else None


def older_checkpoints(checkpoint) -> list:
    """The other checkpoints of ``checkpoint``'s run (its sibling ``checkpoint_*`` directories), highest step
    first (from their ``checkpoint.json``; name order, i.e. save time, for those without one)."""
    import ray.train
    from pyarrow import fs

    from raydrift.training.checkpoint import INFO_FILE

    filesystem, path = checkpoint.filesystem, str(checkpoint.path).rstrip("/")
    parent = path.rsplit("/", 1)[0]
    found = []
    for info in filesystem.get_file_info(fs.FileSelector(parent)):
        if info.type != fs.FileType.Directory or not info.base_name.startswith("checkpoint_") or info.path == path:
            continue
        try:
            with filesystem.open_input_stream(f"{info.path}/{INFO_FILE}") as f:
                step = int(json.loads(f.read().decode())["step"])
        except (OSError, ValueError, KeyError, TypeError):
            step = -1
        found.append((step, info.base_name, info.path))
    return [ray.train.Checkpoint(p, filesystem=filesystem) for _, _, p in sorted(found, reverse=True)]


def failure_of(result, run_dir: str | Path | None = None) -> str | None:
    """The reason a finished Train run failed (an error, or a non-finite loss that rank 0 reported as the
    last record of the run's history), else None. ``result.metrics`` cannot tell: Train V2 keeps the
    metrics of the latest checkpoint there."""
    if result.error is not None:
        return root_cause(result.error)
    text = read_text(run_dir, METRICS_FILE) if run_dir else None
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if lines:
        try:
            return json.loads(lines[-1]).get("failure")
        except json.JSONDecodeError:
            return None
    return None


def root_cause(err: BaseException) -> str:
    seen = err
    while seen.__cause__ is not None:
        seen = seen.__cause__
    return f"{type(seen).__name__}: {seen}"


def make_trainer(
    cfg: Config,
    run_dir: str | Path,
    *,
    storage_path: str,
    name: str,
    max_failures: int = 0,
    callbacks: list | None = None,
    wandb: dict[str, str] | None = None,
):
    """A ``TorchTrainer`` for ``cfg``: workers, resources, checkpoints and failure policy from the config
    (gloo on CPU, nccl on GPU)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    s = cfg.scaling
    resources = {"CPU": s.cpus_per_worker} | ({"GPU": s.gpus_per_worker} if s.use_gpu else {})
    return TorchTrainer(
        train_worker,
        train_loop_config={"config": to_dict(cfg), "run_dir": str(run_dir), "wandb": wandb or {}},
        scaling_config=ScalingConfig(num_workers=s.num_workers, use_gpu=s.use_gpu, resources_per_worker=resources),
        torch_config=TorchConfig(backend="nccl" if s.use_gpu else "gloo"),
        run_config=RunConfig(
            name=name,
            storage_path=storage_path,
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.train.keep_checkpoints),
            failure_config=FailureConfig(max_failures=max_failures),
            callbacks=callbacks or [],
        ),
    )


def write_run_files(run_dir: str | Path, cfg: Config, meta: dict[str, Any]) -> None:
    """``config.json``, ``meta.json`` and the marker file into ``run_dir`` (a path or a storage URI)."""
    write_json_files(run_dir, {MARKER_FILE: marker("run"), CONFIG_FILE: to_dict(cfg), META_FILE: meta})


def run_training(
    cfg: Config,
    *,
    overrides: dict[str, Any] | None = None,
    address: str | None = None,
    max_failures: int = 0,
):
    """Run ``cfg`` under Ray Train; returns the ``ray.train.Result``. Raises on failure (a
    :class:`~raydrift.orchestration.resources.ResourcesError` before anything starts if the cluster is too small)."""
    init_ray(address)
    if not (address or os.environ.get("RAY_ADDRESS")):  # a cluster's autoscaler may still add what is missing
        check_fits(cfg, cluster_nodes())
    storage = str(Path(cfg.output_dir).expanduser().resolve())
    from .wandb_logger import run_id

    run_dir = Path(storage) / cfg.run_name
    write_run_files(
        run_dir, cfg, run_meta(run_name=cfg.run_name, preset=cfg.preset, seed=cfg.train.seed, overrides=overrides or {})
    )
    trainer = make_trainer(
        cfg,
        run_dir,
        storage_path=storage,
        name=cfg.run_name,
        max_failures=max_failures,
        wandb={"id": run_id(cfg.run_name, f"s{cfg.train.seed}"), "group": "", "name": cfg.run_name},
    )
    return trainer.fit()


def run_dir_of(cfg: Config) -> Path:
    """``<output_dir>/<run name>``: always a child of ``output_dir`` (the config checks the name)."""
    return Path(cfg.output_dir).expanduser().resolve() / cfg.run_name


def run_exists(cfg: Config) -> bool:
    run_dir = run_dir_of(cfg)
    return run_dir.is_symlink() or (run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())))


def remove_run(cfg: Config) -> None:
    """Delete the run directory of ``cfg``, only if raydrift made it (see :func:`storage.remove_created`)."""
    remove_created(run_dir_of(cfg), "run directory", "choose another --name")
