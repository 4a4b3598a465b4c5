"""Studies on Ray Tune: ``raydrift tune search_spaces/<study>.py``.

One trial = one configuration x one seed. Each trial is a Tune function trainable (reserving no CPU of
its own) that builds a Ray Train torch trainer (``launch.make_trainer``: ``TorchTrainer``'s
``DataParallelTrainer`` + torch backend, the backend ours so that this driver never imports torch) whose
rank 0 forwards its reports to Tune through ``TuneReportCallback`` (the Train V2 pattern). Grid search
for ablations, HyperOpt TPE for continuous spaces (each suggestion repeated over the seeds), ASHA on the
study metric over images seen (it only sees reports that carry the metric, i.e. eval steps). Names are
stable (no timestamps), so an interrupted study continues with ``--resume``; a trial whose loss turns
non-finite fails with that reason while the study goes on; workers that die are restarted from the
trial's last checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from .config import ConfigError
from .history import read_history
from .storage import exists as storage_exists
from .storage import remove_tree, write_json_files
from .study import Study, StudyError, group_id, group_label, load_study, resolved

DATASET_CLASSES = {"toy2d": 1}  # classes per dataset where not 10
SUMMARY_FILE, STUDY_FILE = "summary.json", "study.json"


class TrialFailed(RuntimeError):
    """Raised in a trial's driver so Tune marks the trial ERROR with the reason."""


def run_trial(config: dict[str, Any], study: Study, experiment: str, experiment_dir: str) -> None:
    """Tune function trainable: one configuration x one seed as a Ray Train run."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from .launch import failure_of, make_trainer, write_run_files
    from .wandb_logger import run_id

    params = {k: config[k] for k in sorted(study.space)}
    seed = config["train.seed"] if "train.seed" in config else study.seeds[config["__trial_index__"]]
    cfg = study.trial_config(params, seed)
    ctx = tune.get_context()
    trial_id = ctx.get_trial_id()
    # The trial's directory on the experiment storage, which every node reaches (ctx.get_trial_dir() is a
    # staging directory on the node of this trial's driver: only the Tuner's node gets it synced).
    trial_dir = _join(experiment_dir, Path(ctx.get_trial_dir()).name)
    base = study.base_overrides()
    gid, label = group_id(study.preset, params, base), group_label(params)
    meta = {
        "experiment": experiment,
        "trial_id": trial_id,
        "run_name": f"{label}-s{seed}",
        "group_id": gid,
        "group_label": label,
        "seed": seed,
        "overrides": params,
        "fixed": base,
        "preset": study.preset,
    }
    write_run_files(trial_dir, cfg, meta)
    trainer = make_trainer(
        cfg,
        trial_dir,
        storage_path=experiment_dir,
        name=f"train-{trial_id}",
        max_failures=int(study.trial.get("max_failures", 2)),
        callbacks=[TuneReportCallback()],
        wandb={"id": run_id(experiment, trial_id), "group": f"{experiment}-{gid}", "name": f"{label}-seed{seed}"},
    )
    result = trainer.fit()
    if reason := failure_of(result, trial_dir):
        raise TrialFailed(reason)


def images_per_step(study: Study) -> int:
    cfg = study.base_config()
    classes = min(cfg.drift.classes_per_step, DATASET_CLASSES.get(cfg.data.dataset, 10))
    return classes * cfg.drift.n_neg * cfg.scaling.num_workers


def build_tuner_parts(study: Study, experiment: str, experiment_dir: str):
    """(trainable, param_space, tune_config) for a fresh run or a restore."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    trainable = tune.with_resources(
        tune.with_parameters(run_trial, study=study, experiment=experiment, experiment_dir=experiment_dir),
        {"cpu": 0, "memory": 256 * 2**20},  # the driver only waits on its Train run
    )
    param_space = dict(study.space)
    search_alg, num_samples = None, 1
    if study.algorithm == "grid":
        param_space["train.seed"] = tune.grid_search(study.seeds)
    else:
        from ray.tune.search import Repeater
        from ray.tune.search.hyperopt import HyperOptSearch

        s = study.search
        hyperopt = HyperOptSearch(
            metric=study.metric,
            mode=study.mode,
            n_initial_points=int(s.get("n_initial_points", 4)),
            random_state_seed=int(s.get("seed", 0)),
        )
        search_alg = Repeater(hyperopt, repeat=len(study.seeds), set_index=True)
        num_samples = int(s.get("num_samples", 8)) * len(study.seeds)
    scheduler = None
    if study.scheduler is not None:
        per_step = images_per_step(study)
        scheduler = ASHAScheduler(
            time_attr="images_seen",
            max_t=10**15,
            grace_period=int(study.scheduler.get("grace_steps", 100)) * per_step,
            reduction_factor=float(study.scheduler.get("reduction_factor", 2)),
            stop_last_trials=False,
        )
    tune_config = tune.TuneConfig(
        metric=study.metric,
        mode=study.mode,
        search_alg=search_alg,
        scheduler=scheduler,
        num_samples=num_samples,
        max_concurrent_trials=study.max_concurrent,
        time_budget_s=study.time_budget_s,
        trial_dirname_creator=lambda t: f"trial_{t.trial_id}",
        trial_name_creator=lambda t: (
            f"{group_label({k: t.config.get(k) for k in study.space})}"
            f"-s{t.config.get('train.seed', t.config.get('__trial_index__', ''))}"
        ),
    )
    return trainable, param_space, tune_config


def run_study(
    study: Study,
    *,
    name: str,
    storage: str,
    address: str | None = None,
    resume: bool = False,
    retry_failed: bool = False,
):
    """Run (or resume) ``study`` under Ray Tune; returns ``(ResultGrid, summary rows)``."""
    from ray import tune

    from .launch import init_ray

    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # non-eval reports lack eval/fid
    init_ray(address)
    experiment_dir = _join(storage, name)
    trainable, param_space, tune_config = build_tuner_parts(study, name, experiment_dir)
    if resume:
        tuner = tune.Tuner.restore(
            experiment_dir,
            trainable=trainable,
            param_space=param_space,
            resume_unfinished=True,
            resume_errored=retry_failed,
            restart_errored=False,
        )
    else:
        write_json_files(experiment_dir, {STUDY_FILE: resolved(study)})
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune_config,
            run_config=tune.RunConfig(
                name=name, storage_path=storage, failure_config=tune.FailureConfig(max_failures=0), verbose=1
            ),
        )
    results = tuner.fit()
    rows = summarize(results, study)
    write_json_files(experiment_dir, {SUMMARY_FILE: {"trials": rows}})
    return results, rows


def summarize(results, study: Study) -> list[dict[str, Any]]:
    """One row per trial: group, seed, status (completed / early-stopped / failed / unfinished), FIDs."""
    steps = study.base_config().train.steps
    rows = []
    for r in results:
        trial_dir = Path(r.path) if r.path and _is_local(r.path) else None
        meta = _read_json(trial_dir / "meta.json") if trial_dir else {}
        history = read_history(trial_dir) if trial_dir and (trial_dir / "metrics.jsonl").exists() else []
        cfg = _read_json(trial_dir / "config.json") if trial_dir else {}
        final_steps = cfg.get("train", {}).get("steps", steps)
        last_step = max((h.get("step", 0) for h in history), default=(r.metrics or {}).get("step", 0))
        fids = [h["eval/fid"] for h in history if h.get("eval/fid") is not None]
        if r.error is not None:
            status, reason = "failed", _error_text(r.error)
        elif last_step >= final_steps:
            status, reason = "completed", ""
        elif (r.metrics or {}).get("done") or last_step > 0:
            status, reason = "early-stopped", f"stopped at step {last_step}"
        else:
            status, reason = "unfinished", ""
        rows.append(
            {
                "trial_id": meta.get("trial_id", (r.metrics or {}).get("trial_id", "")),
                "group": meta.get("group_label", ""),
                "group_id": meta.get("group_id", ""),
                "seed": meta.get("seed"),
                "status": status,
                "reason": reason,
                "last_step": last_step,
                "last_fid": fids[-1] if fids else None,
                "best_fid": min(fids) if fids else None,
                "path": str(trial_dir) if trial_dir else r.path,
            }
        )
    return sorted(rows, key=lambda row: (row["group"], row["seed"] if row["seed"] is not None else -1))


def format_summary(rows: list[dict[str, Any]]) -> str:
    counts = {s: sum(r["status"] == s for r in rows) for s in ("completed", "early-stopped", "failed", "unfinished")}
    head = (
        f"{len(rows)} trials: {counts['completed']} completed, {counts['early-stopped']} early-stopped, "
        f"{counts['failed']} failed" + (f", {counts['unfinished']} unfinished" if counts["unfinished"] else "")
    )
    width = max([len("group")] + [len(r["group"]) for r in rows])

    def fmt(v: Any) -> str:
        return f"{v:9.2f}" if isinstance(v, (int, float)) else f"{'-':>9s}"

    lines = [
        head,
        "",
        f"{'group':{width}s} {'seed':>4s} {'status':14s} {'step':>7s} {'last FID':>9s} {'best FID':>9s}  note",
    ]
    for r in rows:
        lines.append(
            f"{r['group']:{width}s} {str(r['seed']):>4s} {r['status']:14s} {r['last_step']:7d} "
            f"{fmt(r['last_fid'])} {fmt(r['best_fid'])}  {r['reason'][:160]}"
        )
    return "\n".join(lines)


def _error_text(err: Any) -> str:
    text = str(err)
    for line in reversed(text.strip().splitlines()):
        if "TrialFailed" in line or "Error" in line:
            return line.split("TrialFailed: ", 1)[-1].strip()[:300]
    return text.strip().splitlines()[-1][:300] if text.strip() else type(err).__name__


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _is_local(path: str) -> bool:
    return "://" not in str(path)


def _join(storage: str, name: str) -> str:
    return f"{storage.rstrip('/')}/{name}" if not _is_local(storage) else str(Path(storage) / name)


# ---------------------------------------------------------------- CLI


@click.command()
@click.argument("study_file", type=click.Path(dir_okay=False))
@click.option("--preset", default=None, help="Base preset (e.g. mnist, cifar10): switches the study to the real data.")
@click.option("--seeds", default=None, help="Comma-separated seeds, replacing the study's SEEDS (e.g. 0,1,2).")
@click.option("--steps", type=int, default=None, help="Training steps per trial (the study's budget per trial).")
@click.option("--time-budget", type=float, default=None, help="Stop the whole study after this many seconds.")
@click.option("--max-concurrent", type=int, default=None, help="Trials at once (default: the study's).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Extra fixed override for every trial.")
@click.option("--name", default=None, help="Experiment name (default: <study>-<preset>; stable so --resume works).")
@click.option(
    "--storage",
    default="runs/studies",
    show_default=True,
    help="Experiment storage: a local/shared path or a URI (s3://..., gs://...) for multi-node clusters.",
)
@click.option("--address", default=None, help="Ray cluster address (auto, or host:port); default: a local cluster.")
@click.option(
    "--wandb",
    "wandb_mode",
    type=click.Choice(["disabled", "offline", "online"]),
    default=None,
    help="W&B logging from rank 0 of every trial (default: the config's, disabled).",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted study (finished trials are not re-run).")
@click.option("--retry-failed", is_flag=True, help="With --resume: also retry failed trials from their checkpoints.")
@click.option("--overwrite", is_flag=True, help="Delete an existing experiment of the same name first.")
@click.option("--dry-run", is_flag=True, help="Validate the study and list its trials; run nothing.")
def tune(
    study_file,
    preset,
    seeds,
    steps,
    time_budget,
    max_concurrent,
    sets,
    name,
    storage,
    address,
    wandb_mode,
    resume,
    retry_failed,
    overwrite,
    dry_run,
):
    """Run a study: every configuration x seed trained under Ray Train, scheduled by Ray Tune, stopped early
    by ASHA on FID, logged, resumable.

    \b
    Examples:
      raydrift tune search_spaces/kernels.py                       # embedded digits, minutes on a CPU
      raydrift tune search_spaces/kernels.py --preset mnist --set data.root=DIR --seeds 0,1,2
      raydrift tune search_spaces/kernels.py --resume              # continue after Ctrl-C or a crash
      raydrift tune search_spaces/smoke.py --address auto --storage s3://bucket/studies
    """
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()] if seeds else None
    except ValueError:
        raise click.BadParameter(f"seeds must be integers like 0,1,2, got {seeds!r}", param_hint="--seeds") from None
    try:
        study = load_study(study_file, preset=preset, seeds=seed_list)
        extra = dict(item.split("=", 1) for item in sets if "=" in item)
        if len(extra) != len(sets):
            raise click.BadParameter("overrides must look like key=value", param_hint="--set")
        if steps is not None:
            extra["train.steps"] = steps
        if wandb_mode is not None:
            extra["wandb.mode"] = wandb_mode
        study.cli = extra
        if time_budget is not None:
            study.time_budget_s = time_budget
        if max_concurrent is not None:
            study.max_concurrent = max_concurrent
        if extra:
            from .study import validate

            validate(study)
    except (StudyError, ConfigError) as err:
        raise click.ClickException(str(err)) from None
    name = name or f"{study.name}-{study.preset}"
    storage = storage if not _is_local(storage) else str(Path(storage).expanduser().resolve())
    experiment_dir = _join(storage, name)
    if dry_run:
        click.echo(_describe(study, experiment_dir))
        return
    from .cli import _check_data

    _check_data(study.base_config())
    if storage_exists(experiment_dir) and not resume:
        if overwrite:
            remove_tree(experiment_dir)
        else:
            raise click.ClickException(
                f"experiment {experiment_dir} exists: pass --resume to continue it, --overwrite to start over, "
                "or --name for a new one"
            )
    if resume and not storage_exists(experiment_dir):
        raise click.ClickException(f"nothing to resume: {experiment_dir} does not exist")
    click.echo(_describe(study, experiment_dir, short=True))
    try:
        _, rows = run_study(
            study, name=name, storage=storage, address=address, resume=resume, retry_failed=retry_failed
        )
    except KeyboardInterrupt:
        raise click.ClickException(f"interrupted; continue with: raydrift tune {study_file} --resume") from None
    click.echo("\n" + format_summary(rows))
    if any(r["status"] == "unfinished" for r in rows):
        click.echo(f"\nsome trials did not finish; continue with: raydrift tune {study_file} --resume")
    click.echo(f"\nexperiment: {experiment_dir}\nanalyze it: raydrift analyze {experiment_dir}")


def _describe(study: Study, experiment_dir: str, short: bool = False) -> str:
    from itertools import product

    from ray.tune.search.sample import Categorical

    grid_keys = [k for k, v in sorted(study.space.items()) if isinstance(v, dict) and "grid_search" in v]
    combos = list(product(*(study.space[k]["grid_search"] for k in grid_keys))) if grid_keys else [()]
    n = (
        len(combos) * len(study.seeds)
        if study.algorithm == "grid"
        else (int(study.search.get("num_samples", 8)) * len(study.seeds))
    )
    cfg = study.base_config()
    lines = [
        f"study {study.name} ({study.path}): {study.description.splitlines()[0] if study.description else ''}",
        f"  preset {study.preset}, {n} trials ({study.algorithm}; seeds {study.seeds}), "
        f"{cfg.train.steps} steps each, eval every {cfg.eval.every}, ASHA "
        + (f"grace {study.scheduler.get('grace_steps', 100)} steps" if study.scheduler else "off")
        + f", {study.max_concurrent} at once, metric {study.metric} ({study.mode})",
        f"  experiment dir: {experiment_dir}",
    ]
    if not short:
        lines.append("  search space:")
        for k, v in sorted(study.space.items()):
            desc = v["grid_search"] if isinstance(v, dict) else v.categories if isinstance(v, Categorical) else v
            lines.append(f"    {k}: {desc}")
        if study.algorithm == "grid":
            lines.append("  configurations:")
            for combo in combos:
                lines.append(f"    {group_label(dict(zip(grid_keys, combo)))}  x seeds {study.seeds}")
    return "\n".join(lines)
