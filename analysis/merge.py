"""Merging a run's stages (resumes from a checkpoint) into one history by step.

A stage that resumes from a checkpoint replays the steps after that checkpoint, so the later stage wins
from its first logged step on: every record of an earlier stage at or after the first step of any later
stage is dropped (not only records at exactly the same step; an earlier stage's tail between two of the
later stage's logged steps belongs to an abandoned timeline). Within one stage, several records at one
step (e.g. train and eval logged separately to W&B) are combined key by key, the later record winning.
A metric that a stage did not log stays missing (no row), never zero.
"""

from __future__ import annotations

import polars as pl


def stage_cutoffs(steps: pl.DataFrame) -> pl.DataFrame:
    """``run, stage, cutoff``: the first step of any later stage (null for the last stage).

    ``steps`` has one row per record: ``run, stage, step`` (and more).
    """
    first = steps.group_by("run", "stage").agg(pl.col("step").min().alias("first"))
    first = first.sort(["run", "stage"], descending=[False, True])
    return first.with_columns(pl.col("first").cum_min().shift(1).over("run").alias("cutoff")).select(
        "run", "stage", "cutoff"
    )


def _keep(frame: pl.DataFrame, cutoffs: pl.DataFrame) -> pl.DataFrame:
    frame = frame.join(cutoffs, on=["run", "stage"], how="left")
    return frame.filter(pl.col("cutoff").is_null() | (pl.col("step") < pl.col("cutoff"))).drop("cutoff")


def merge_stages(steps: pl.DataFrame, long: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Merged ``(steps, long)``.

    ``steps``: one row per record (``run, stage, step, seq, images_seen``; ``seq`` orders a run's records
    as written). ``long``: one row per (record, metric) with the same columns plus ``metric, value`` and
    provenance. Returns ``steps`` with one row per (run, step) and ``long`` with one row per (run, step,
    metric), both without ``seq``.
    """
    cutoffs = stage_cutoffs(steps)
    steps = _keep(steps, cutoffs).sort("run", "step", "seq")
    steps = steps.group_by("run", "step", maintain_order=True).agg(
        pl.col("stage").last(), pl.col("images_seen").drop_nulls().last()
    )
    long = _keep(long, cutoffs).sort("run", "step", "seq")
    long = long.unique(subset=["run", "step", "metric"], keep="last", maintain_order=True)
    return steps.select("run", "stage", "step", "images_seen"), long.drop("seq")


def missing_stages(steps: pl.DataFrame, long: pl.DataFrame, metrics: list[str]) -> pl.DataFrame:
    """``run, metric, stage, first_step, last_step`` for each merged stage that has no value of a metric.

    Only runs that logged the metric in some stage are listed (a run that never logged it is simply
    missing from the metric's statistics, which the tables show through n).
    """
    spans = steps.group_by("run", "stage").agg(
        pl.col("step").min().alias("first_step"), pl.col("step").max().alias("last_step")
    )
    logged = long.filter(pl.col("metric").is_in(metrics)).select("run", "metric", "stage").unique()
    wanted = logged.select("run", "metric").unique().join(spans, on="run")
    return wanted.join(logged, on=["run", "metric", "stage"], how="anti").sort("run", "metric", "stage")
