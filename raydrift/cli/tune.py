"""``raydrift tune``: run a study file under Ray Tune, then print its verdict (``raydrift analyze``'s) and
per-trial summary."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click

from raydrift.config import ConfigError
from raydrift.errors import check_name

from .common import absolute_paths, check_data, check_resources, name_option, preflight
from .console import ray_output_to


@click.command()
@click.argument("study_file", type=click.Path(dir_okay=False))
@click.option("--preset", default=None, help="Base preset (e.g. mnist, cifar10): switches the study to the real data.")
@click.option(
    "--seeds",
    default=None,
    help="Comma-separated seeds, replacing the study's SEEDS (e.g. 0,1,2). A race uses exactly these: its "
    "max_seeds becomes their count (and min_seeds too where the study fixes the count).",
)
@click.option(
    "--steps", type=click.IntRange(min=1), default=None, help="Training steps per trial (the study's budget per trial)."
)
@click.option(
    "--time-budget",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop the whole study after this many seconds (continue it later with --resume).",
)
@click.option(
    "--max-concurrent", type=click.IntRange(min=1), default=None, help="Trials at once (default: the study's)."
)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Extra fixed override for every trial.")
@click.option(
    "--name",
    default=None,
    callback=name_option,
    help="Experiment name, a plain directory name under --storage (default: <study>-<preset>; stable so --resume "
    "works).",
)
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
@click.option(
    "--overwrite",
    is_flag=True,
    help="Delete an existing experiment of the same name first (only a directory raydrift created).",
)
@click.option("--dry-run", is_flag=True, help="Validate the study and list its trials; run nothing.")
@click.option(
    "--verbose",
    is_flag=True,
    help="Show Ray's own output (status tables, worker logs) instead of writing it to ray.log.",
)
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
    verbose,
):
    """Run a study: every configuration x seed trained under Ray Train, scheduled by Ray Tune, stopped early
    on FID (the study's SCHEDULER: a race over configurations judged on their seeds, or per-trial ASHA),
    logged, resumable.

    STUDY_FILE is Python code: loading it runs it with your permissions, also with --dry-run. Run only study
    files you trust (your own, or ones you have read).

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
    from raydrift.orchestration.progress import set_sink
    from raydrift.orchestration.race_driver import RaceFile, race_summary
    from raydrift.orchestration.ray_train import shutdown_ray
    from raydrift.orchestration.storage import exists as storage_exists
    from raydrift.orchestration.storage import is_uri, join, mark_created, remove_created
    from raydrift.orchestration.study import OverrideError, StudyError, describe
    from raydrift.orchestration.study_file import load_study, validate
    from raydrift.orchestration.tune import run_study

    try:
        study = load_study(study_file, preset=preset, seeds=seed_list)
        extra = dict(item.split("=", 1) for item in absolute_paths(sets) if "=" in item)
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
            validate(study)
    except OverrideError as err:
        raise click.UsageError(str(err)) from None
    except (StudyError, ConfigError) as err:
        raise click.ClickException(str(err)) from None
    name = check_name(name or f"{study.name}-{study.preset}", "experiment name")
    storage = storage if is_uri(storage) else str(Path(storage).expanduser().resolve())
    experiment_dir = join(storage, name)
    if dry_run:
        check_resources(study.base_config(), address, what="each trial")
        click.echo(describe(study, experiment_dir))
        return
    check_data(study.base_config())
    preflight(study.base_config(), address, what="each trial")
    if storage_exists(experiment_dir) and not resume:
        if overwrite:
            remove_created(experiment_dir, "experiment directory", "choose another --name")
        else:
            raise click.ClickException(
                f"experiment {experiment_dir} exists: pass --resume to continue it, --overwrite to start over, "
                "or --name for a new one"
            )
    if resume and retry_failed and study.scheduler_type == "race":
        raise click.UsageError(
            "--retry-failed does not apply to a race study: a failed trial is its seed's missing value and the race "
            "has decided without it; resume without --retry-failed"
        )
    if resume and not storage_exists(experiment_dir):
        raise click.ClickException(f"nothing to resume: {experiment_dir} does not exist")
    if not resume:
        mark_created(experiment_dir, "study")
    click.echo(describe(study, experiment_dir, short=True))
    log_path = None if verbose else _ray_log(experiment_dir, name)
    if log_path is not None:
        click.echo(f"  Ray's own output: {log_path} (--verbose shows it here)")
    with ray_output_to(log_path) as say:
        set_sink(say)
        try:
            _, rows = run_study(
                study,
                name=name,
                storage=storage,
                address=address,
                resume=resume,
                retry_failed=retry_failed,
                verbose=verbose,
            )
        except KeyboardInterrupt:
            raise click.ClickException(f"interrupted; continue with: {_resume_command(study_file, name)}") from None
        finally:
            shutdown_ray()
    click.echo("\n" + study_verdict(experiment_dir))
    click.echo(format_summary(rows))
    if study.scheduler_type == "race" and (race := RaceFile(experiment_dir).read()):
        click.echo("\n" + format_race(race_summary(race)))
    if any(r["status"] == "unfinished" for r in rows) or (
        study.time_budget_s is not None and any(r["status"] == "early-stopped" for r in rows)
    ):
        cut = f" (the time budget of {study.time_budget_s:g} s ran out)" if study.time_budget_s is not None else ""
        click.echo(f"\nsome trials did not finish{cut}; continue with: {_resume_command(study_file, name)}")
    click.echo(f"\nexperiment: {experiment_dir}\nanalyze it: raydrift analyze {experiment_dir}")


def _resume_command(study_file: str, name: str) -> str:
    return f"raydrift tune {study_file} --resume (with the same --preset, --name and --storage)"


def _ray_log(experiment_dir: str, name: str) -> Path:
    """Where Ray's output goes: ``ray.log`` in a local experiment directory, a local file for a URI."""
    from raydrift.orchestration.storage import is_uri

    if is_uri(experiment_dir):
        return Path(tempfile.gettempdir()) / f"raydrift-{name}-ray.log"
    return Path(experiment_dir) / "ray.log"


def study_verdict(experiment_dir: str) -> str:
    """The verdict of ``raydrift analyze`` on the experiment (local storage only)."""
    from raydrift.orchestration.storage import is_uri

    if is_uri(experiment_dir):
        return f"(no verdict printed for remote storage {experiment_dir}: copy it here, then raydrift analyze it)"
    from analysis.report import verdict_markdown

    try:
        return verdict_markdown([experiment_dir])
    except Exception as err:  # a finished study's results must not be lost to a reporting error
        return f"no verdict ({type(err).__name__}: {err}); try: raydrift analyze {experiment_dir}"


def format_summary(rows: list[dict[str, Any]]) -> str:
    """The per-trial table printed at the end of a study."""
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


def format_race(race: dict[str, Any]) -> str:
    """The race's verdicts: per group (best first) its status, seeds and metric at the last rung it reached."""
    metric = race["metric"]
    rows = race["groups"]
    width = max([len("group")] + [len(r["group"]) for r in rows])
    swidth = max([len("race status")] + [len(r["status"]) for r in rows])
    lines = [
        f"race: pick {race['pick'] or '(none: no group finished)'}",
        "",
        f"{'group':{width}s} {'race status':{swidth}s} {'seeds':>5s}  "
        f"{metric} at the last rung reached or the stop (mean ± CI, n)",
    ]
    for r in rows:
        if r["mean"] is None:
            where = "no eval yet"
        else:
            ci = f" ± {r['ci']:.2f}" if r["ci"] is not None else ""
            where = f"{r['mean']:.2f}{ci} (n {r['n']}) at rung {r['rung']} ({r['images']:,} images)"
        lines.append(f"{r['group']:{width}s} {r['status']:{swidth}s} {r['seeds']:5d}  {where}")
    labels = [r for r in rows if r["label"] and r["label"] != r["group"]]
    lines += [f"  {r['group']}: {r['label']}" for r in labels]
    return "\n".join(lines)
