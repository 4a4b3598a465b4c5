"""How each run ended (finished / stopped by the scheduler / failed / unfinished), and the common step.

Sources, first found wins:

- the experiment's ``summary.json`` (``raydrift tune`` writes it when a study ends): per trial, ``status``
  ``completed`` / ``early-stopped`` / ``failed`` / ``unfinished`` and the reason;
- the run's own records: a final ``{"failure": reason}`` record (a non-finite loss, a worker failure past
  ``max_failures``) means failed; a W&B export's ``meta.json`` ``wandb.state`` (``crashed``, ``failed``);
- its planned length: a run whose history reaches the config's ``train.steps`` (or with no planned length)
  finished; one that ends earlier, with none of the above, *ended* early for a reason not recorded.

Who stopped a run comes from the experiment's ``study.json``: its ``scheduler`` (ASHA unless its ``type``
says otherwise), and its time budget, which also stops trials.

The *common step* of a set of runs is the last step every finished run reached (the least final step of
the finished runs; of all runs when none finished): the step where every configuration's finished seeds
can be compared, and where runs that ended before it are left out, never carried forward.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

FINISHED, STOPPED, FAILED, UNFINISHED, ENDED = "finished", "stopped", "failed", "unfinished", "ended"
_SUMMARY_STATUS = {"completed": FINISHED, "early-stopped": STOPPED, "failed": FAILED, "unfinished": UNFINISHED}
_WANDB_FAILED = {"crashed", "failed", "killed"}
SUMMARY_FILE, STUDY_FILE = "summary.json", "study.json"


def _experiment_files(directory: str) -> tuple[dict[str, dict], dict[str, Any]]:
    """``({trial_id: summary row}, study.json)`` of one experiment directory (empty when absent)."""
    trials, study = {}, {}
    for name in (SUMMARY_FILE, STUDY_FILE):
        path = Path(directory) / name
        try:
            data = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, json.JSONDecodeError):
            data = {}
        if name == SUMMARY_FILE:
            trials = {str(t.get("trial_id")): t for t in data.get("trials", []) if isinstance(t, dict)}
        else:
            study = data if isinstance(data, dict) else {}
    return trials, study


def experiment_dirs(paths: str) -> list[str]:
    """The directories above a run's directories (``paths`` as in ``Results.runs``: ``;``-joined)."""
    return list(dict.fromkeys(str(Path(p).parent) for p in paths.split(";") if p))


def study_settings(paths: Iterable[str]) -> dict[str, Any]:
    """``study.json`` of the first experiment (of ``runs["paths"]`` values) that has one, else {}."""
    for joined in paths:
        for d in experiment_dirs(joined or ""):
            study = _experiment_files(d)[1]
            if study:
                return study
    return {}


def stopper(study: dict[str, Any]) -> str:
    """Who stops trials early in a study: its scheduler (and its time budget)."""
    scheduler = study.get("scheduler")
    name = None
    if isinstance(scheduler, dict):
        name = {"race": "the race"}.get(str(scheduler.get("type", "asha")).lower(), str(scheduler.get("type", "ASHA")))
        name = "ASHA" if name.lower() == "asha" else name
    budget = study.get("time_budget_s")
    if name and budget:
        return f"{name} or the time budget"
    return name or ("the time budget" if budget else "")


def classify(row: dict[str, Any], read=_experiment_files) -> tuple[str, str]:
    """``(status, note)`` of one run (a row of ``Results.runs`` with ``failure``, ``wandb_state``,
    ``planned_steps``, ``final_step``, ``trial_id``, ``paths``)."""
    step = row.get("final_step")
    trials, study = {}, {}
    for d in experiment_dirs(row.get("paths") or ""):
        t, s = read(d)
        trials, study = trials or t, study or s
    summary = trials.get(str(row.get("trial_id")))
    if summary is not None and summary.get("status") in _SUMMARY_STATUS:
        status = _SUMMARY_STATUS[summary["status"]]
        if status == FAILED:
            return status, _failed(step, summary.get("reason") or row.get("failure"))
        if status == STOPPED:
            by = stopper(study)
            return status, f"stopped at step {step}" + (f" by {by}" if by else "")
        if status == UNFINISHED:
            why = "the time budget ran out or the study was interrupted" if study.get("time_budget_s") else None
            return status, f"unfinished at step {step} ({why or 'the study was interrupted'})"
        return status, FINISHED
    if row.get("failure"):
        return FAILED, _failed(step, row["failure"])
    if row.get("wandb_state") in _WANDB_FAILED:
        return FAILED, f"{row['wandb_state']} at step {step} (W&B run state)"
    planned = row.get("planned_steps")
    if planned is None or step is None or step >= planned:
        return FINISHED, FINISHED
    return ENDED, f"ended at step {step} of {planned} (no record why)"


def _failed(step: int | None, reason: str | None) -> str:
    text = f"failed at step {step}"
    return text + (f": {str(reason).splitlines()[0][:120]}" if reason else "")


def with_status(runs: pl.DataFrame) -> pl.DataFrame:
    """``runs`` with ``status`` and ``status_note`` (e.g. ``stopped at step 300 by ASHA``)."""
    read = functools.cache(_experiment_files)
    pairs = [classify(row, read) for row in runs.iter_rows(named=True)]
    return runs.with_columns(
        pl.Series("status", [s for s, _ in pairs], dtype=pl.String),
        pl.Series("status_note", [n for _, n in pairs], dtype=pl.String),
    )


def common_step(runs: pl.DataFrame) -> int | None:
    """The last step every finished run reached (of every run when none finished); None without runs."""
    finished = runs.filter(pl.col("status") == FINISHED)["final_step"].drop_nulls()
    steps = finished if finished.len() else runs["final_step"].drop_nulls()
    return int(steps.min()) if steps.len() else None
