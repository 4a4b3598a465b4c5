"""Studies on Ray Tune: what ``raydrift tune search_spaces/<study>.py`` runs.

One trial = one configuration x one seed. Each trial is a Tune function trainable (reserving no CPU of
its own) that builds a Ray Train ``TorchTrainer`` (:func:`raydrift.orchestration.ray_train.make_trainer`)
whose rank 0 forwards its reports to Tune through ``TuneReportCallback`` (the Train V2 pattern). Grid search
for ablations, HyperOpt TPE for continuous spaces (each suggestion repeated over the seeds), ASHA on the
study metric over images seen (it only sees reports that carry the metric, i.e. eval steps); or, with
``SCHEDULER = {"type": "race", ...}``, the race's searcher and scheduler (:mod:`.race_tune`), which hand out
(configuration, seed) trials themselves and stop whole configurations. Names are
stable (no timestamps), so an interrupted study continues with ``--resume``; a trial whose loss turns
non-finite fails with that reason while the study goes on; workers that die are restarted from the
trial's last checkpoint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raydrift.data.registry import dataset_info
from raydrift.training.rundir import MARKER_FILE, marker, read_history, run_meta

from .progress import StudyProgress, error_text
from .race_driver import RaceFile, race_summary
from .resources import check_fits, cluster_nodes
from .storage import is_uri, join, write_json_files
from .study import Study, group_id, group_label, resolved

SUMMARY_FILE, STUDY_FILE = "summary.json", "study.json"


class TrialFailed(RuntimeError):
    """Raised in a trial's driver so Tune marks the trial ERROR with the reason."""


def run_trial(config: dict[str, Any], study: Study, experiment: str, experiment_dir: str) -> None:
    """Tune function trainable: one configuration x one seed as a Ray Train run."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from .ray_train import failure_of, make_trainer, write_run_files
    from .wandb_logger import run_id

    params = {k: config[k] for k in sorted(study.space)}
    seed = config["train.seed"] if "train.seed" in config else study.seeds[config["__trial_index__"]]
    cfg = study.trial_config(params, seed)
    ctx = tune.get_context()
    trial_id = ctx.get_trial_id()
    # The trial's directory on the experiment storage, which every node reaches (ctx.get_trial_dir() is a
    # staging directory on the node of this trial's driver: only the Tuner's node gets it synced).
    trial_dir = join(experiment_dir, Path(ctx.get_trial_dir()).name)
    base = study.base_overrides()
    gid, label = group_id(study.preset, params, base), group_label(params)
    meta = run_meta(
        run_name=f"{label}-s{seed}",
        preset=study.preset,
        seed=seed,
        overrides=params,
        experiment=experiment,
        trial_id=trial_id,
        group_id=gid,
        group_label=label,
        fixed=base,
    )
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
    classes = min(cfg.drift.classes_per_step, dataset_info(cfg.data.dataset).num_classes)
    return classes * cfg.drift.n_neg * cfg.scaling.num_workers


def build_tuner_parts(study: Study, experiment: str, experiment_dir: str, trial_fn: Callable | None = None):
    """(trainable, param_space, tune_config) for a fresh run or a restore; ``trial_fn`` replaces
    :func:`run_trial` (called the same way)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    fn = trial_fn or run_trial
    trainable = tune.with_resources(
        tune.with_parameters(fn, study=study, experiment=experiment, experiment_dir=experiment_dir),
        {"cpu": 0, "memory": 256 * 2**20},  # the driver only waits on its Train run
    )
    param_space = dict(study.space)
    search_alg, num_samples, scheduler, max_concurrent = None, 1, None, study.max_concurrent
    if study.scheduler_type == "race":  # the race's searcher hands out every trial and bounds concurrency
        from .race_tune import race_parts

        search_alg, scheduler = race_parts(study, experiment_dir, images_per_step(study))
        param_space, num_samples, max_concurrent = {}, -1, None
    elif study.algorithm == "grid":
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
    if study.scheduler_type == "asha":
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
        max_concurrent_trials=max_concurrent,
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
    verbose: bool = False,
    trial_fn: Callable | None = None,
):
    """Run (or resume) ``study`` under Ray Tune; returns ``(ResultGrid, summary rows)``. Progress lines go to
    :func:`raydrift.orchestration.progress.emit`; ``verbose`` adds Ray Tune's own status tables. A race study
    also writes ``race.json`` (its state, per group status and rung statistics) and its rows say each group's
    race status. ``trial_fn``: a Tune function trainable run instead of :func:`run_trial` (same arguments)."""
    from ray import tune

    from .ray_train import init_ray

    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # non-eval reports lack eval/fid
    init_ray(address)
    if not (address or os.environ.get("RAY_ADDRESS")):  # a cluster's autoscaler may still add what is missing
        check_fits(study.base_config(), cluster_nodes(), what="each trial")
    experiment_dir = join(storage, name)
    if resume and retry_failed and study.scheduler_type == "race":
        raise ValueError(
            "--retry-failed does not apply to a race study: a failed trial is its seed's missing value and the "
            "race has decided without it; resume without --retry-failed"
        )
    trainable, param_space, tune_config = build_tuner_parts(study, name, experiment_dir, trial_fn)
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
        write_json_files(experiment_dir, {MARKER_FILE: marker("study"), STUDY_FILE: resolved(study)})
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune_config,
            run_config=tune.RunConfig(
                name=name,
                storage_path=storage,
                failure_config=tune.FailureConfig(max_failures=0),
                callbacks=[StudyProgress(study)],
                verbose=1 if verbose else 0,
            ),
        )
    results = tuner.fit()
    rows = summarize(results, study)
    summary: dict[str, Any] = {"trials": rows}
    if study.scheduler_type == "race" and (race := RaceFile(experiment_dir).read()):
        summary["race"] = race_summary(race)
        status = {g["group_id"]: g["status"] for g in race["groups"].values() if g["group_id"]}
        for row in rows:
            row["race"] = status.get(row["group_id"], "")
    write_json_files(experiment_dir, {SUMMARY_FILE: summary})
    return results, rows


def summarize(results, study: Study) -> list[dict[str, Any]]:
    """One row per trial: group, seed, status (completed / early-stopped / failed / unfinished), FIDs."""
    steps = study.base_config().train.steps
    rows = []
    for r in results:
        trial_dir = Path(r.path) if r.path and not is_uri(r.path) else None
        meta = _read_json(trial_dir / "meta.json") if trial_dir else {}
        history = read_history(trial_dir) if trial_dir and (trial_dir / "metrics.jsonl").exists() else []
        cfg = _read_json(trial_dir / "config.json") if trial_dir else {}
        final_steps = cfg.get("train", {}).get("steps", steps)
        last_step = max((h.get("step", 0) for h in history), default=(r.metrics or {}).get("step", 0))
        fids = [h["eval/fid"] for h in history if h.get("eval/fid") is not None]
        if r.error is not None:
            status, reason = "failed", error_text(r.error)
        elif last_step >= final_steps:
            status, reason = "completed", ""
        elif study.scheduler is not None and ((r.metrics or {}).get("done") or last_step > 0):
            status, reason = "early-stopped", f"stopped at step {last_step}"
            if study.time_budget_s is not None:  # ASHA or the time budget: Tune does not say which
                reason += " (by ASHA, or cut by the time budget)"
        else:  # without a scheduler only the time budget (or an interruption) stops a trial early
            status, reason = "unfinished", f"stopped at step {last_step}" if last_step else ""
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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
