"""``raydrift train`` (one run, under Ray Train or in this process) and ``raydrift presets``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from raydrift.config import PRESETS, Config, ConfigError, apply_overrides, describe_keys, get_preset, to_dict
from raydrift.data.registry import dataset_info
from raydrift.errors import UserError

from .common import absolute_paths, check_data, check_resources, name_option, preflight, run_summary


def resolve_config(preset: str, sets: tuple[str, ...], name: str | None = None) -> tuple[Config, dict]:
    """Preset + ``--set`` overrides (+ name) -> validated config and the parsed overrides."""
    cfg = get_preset(preset)
    sets = tuple(absolute_paths(sets))
    overrides = dict(item.split("=", 1) for item in sets if "=" in item)
    cfg = apply_overrides(cfg, list(sets))
    if name:
        cfg = apply_overrides(cfg, {"name": name})
    return cfg, overrides


@click.command()
@click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    default="digits",
    show_default=True,
    help="Starting configuration.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key, e.g. --set drift.kernel=gaussian (repeatable; see --list-keys).",
)
@click.option(
    "--name",
    default=None,
    callback=name_option,
    help="Run name, a plain directory name under output_dir (default: the preset's name).",
)
@click.option("--workers", type=int, default=None, help="Shortcut for --set scaling.num_workers=N.")
@click.option("--gpu/--no-gpu", default=None, help="Shortcut for --set scaling.use_gpu=true/false.")
@click.option("--address", default=None, help="Ray cluster address (e.g. auto); default: start a local one.")
@click.option("--resume", is_flag=True, help="Continue an existing run of the same name from its last checkpoint.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Delete an existing run of the same name first (only a directory raydrift created).",
)
@click.option(
    "--max-failures",
    type=int,
    default=0,
    show_default=True,
    help="Restart failed workers from the last checkpoint up to this many times.",
)
@click.option("--plain", is_flag=True, help="Run in this process without Ray (one worker; for debugging).")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and plan, check the data, run nothing.")
@click.option("--list-keys", is_flag=True, help="List every config key with its type and meaning, then exit.")
def train(preset, sets, name, workers, gpu, address, resume, overwrite, max_failures, plain, dry_run, list_keys):
    """Train one drifting model (Ray Train's TorchTrainer: N workers, gloo on CPU, nccl on GPU)."""
    if list_keys:
        for key, tp, doc in describe_keys():
            click.echo(f"{key:28s} {tp:34s} {doc}")
        return
    extra = ([f"scaling.num_workers={workers}"] if workers is not None else []) + (
        [f"scaling.use_gpu={str(gpu).lower()}"] if gpu is not None else []
    )
    try:
        cfg, overrides = resolve_config(preset, tuple(sets) + tuple(extra), name)
    except ConfigError as err:
        raise click.BadParameter(str(err), param_hint="--set") from None
    check_data(cfg)
    from raydrift.orchestration import ray_train

    if resume and overwrite:
        raise click.UsageError("--resume continues a run and --overwrite deletes it: pass one of them")
    if resume and not ray_train.run_exists(cfg):
        raise click.ClickException(
            f"nothing to resume: run {ray_train.run_dir_of(cfg)} does not exist (check --name and output_dir, or "
            "drop --resume to start it)"
        )
    if dry_run:
        if not plain:
            check_resources(cfg, address)
        click.echo(json.dumps(to_dict(cfg), indent=2))
        s = cfg.scaling
        classes = min(cfg.drift.classes_per_step, dataset_info(cfg.data.dataset).num_classes)
        click.echo(
            f"\nplan: {cfg.train.steps} steps x {classes} classes x "
            f"{cfg.drift.n_neg} samples on {s.num_workers} worker(s) "
            f"({s.cpus_per_worker} CPU{f', {s.gpus_per_worker} GPU' if s.use_gpu else ''} each), "
            f"{'plain process' if plain else 'Ray Train'}; run dir "
            f"{cfg.output_dir}/{cfg.run_name}; eval every {cfg.eval.every} steps ({cfg.eval.feature_net} FID)"
        )
        return
    if not plain:
        preflight(cfg, address)
    if ray_train.run_exists(cfg):
        if overwrite:
            ray_train.remove_run(cfg)
        elif not resume:
            raise click.ClickException(
                f"run {cfg.output_dir}/{cfg.run_name} exists: pass --resume to continue it, --overwrite to "
                "start over, or --name for a new run"
            )
    if plain:
        _train_plain(cfg, overrides, resume)
    else:
        _train_ray(cfg, overrides, address, max_failures)


def _train_ray(cfg: Config, overrides: dict, address: str | None, max_failures: int) -> None:
    from raydrift.orchestration.ray_train import failure_of, root_cause, run_training
    from raydrift.training.rundir import read_history

    click.echo(f"raydrift: training {cfg.run_name} under Ray Train ({cfg.scaling.num_workers} worker(s))")
    try:
        result = run_training(cfg, overrides=overrides, address=address, max_failures=max_failures)
    except UserError:  # said in full by the CLI
        raise
    except Exception as err:  # Ray wraps worker errors; show the cause, not Ray's stack
        raise click.ClickException(f"training failed: {root_cause(err)}") from None
    if failure := failure_of(result, Path(cfg.output_dir).expanduser().resolve() / cfg.run_name):
        raise click.ClickException(f"training failed: {failure}")
    run_dir = f"{cfg.output_dir}/{cfg.run_name}"
    click.echo(f"done: {run_dir}\n  " + run_summary(read_history(run_dir)))


def _train_plain(cfg: Config, overrides: dict, resume: bool) -> None:
    from raydrift.evaluation.evaluator import Evaluator
    from raydrift.orchestration.ray_train import quiet_library_logs, write_run_files
    from raydrift.training.checkpoint import find_checkpoints, load_latest_good
    from raydrift.training.loop import NonFiniteLossError
    from raydrift.training.loop import train as train_loop
    from raydrift.training.precision import PrecisionError
    from raydrift.training.rundir import PlainReporter, read_history, run_meta

    quiet_library_logs()
    run_dir = Path(cfg.output_dir) / cfg.run_name
    meta = run_meta(run_name=cfg.run_name, preset=cfg.preset, seed=cfg.train.seed, overrides=overrides)
    resume_from = None
    if resume:
        found = load_latest_good(find_checkpoints(run_dir), log=click.echo)
        if found is None:
            raise click.ClickException(
                f"nothing to resume: run {run_dir} has no checkpoint (pass --overwrite to start it over)"
            )
        resume_from = found[0]
    write_run_files(run_dir, cfg, meta)
    reporter = PlainReporter(run_dir)
    try:
        train_loop(
            cfg,
            reporter,
            resume_from=resume_from,
            evaluator_factory=lambda c, d, dev: Evaluator(c, d, dev, run_dir / "samples").evaluate,
            log=lambda s: click.echo(s),
        )
    except NonFiniteLossError as err:
        raise click.ClickException(
            f"training failed: {err}; the run stopped there (lower optim.lr, or clip gradients with "
            "optim.grad_clip > 0, then start it over with --overwrite)"
        ) from None
    except PrecisionError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"done: {run_dir}\n  " + run_summary(read_history(run_dir)))


@click.command()
def presets() -> None:
    """List the presets and what each is for (the first line of each preset's docstring)."""
    for name, fn in PRESETS.items():
        click.echo(f"{name:14s} {(fn.__doc__ or '').strip().splitlines()[0]}")
