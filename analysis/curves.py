"""Learning curves as the CSV that ``benchmarks/scheduler_replay.py`` replays.

One row per eval of every run: ``group`` (the run's grouping label, i.e. its configuration without the
seed), ``seed``, ``step``, ``images_seen``, ``fid`` (the value of the chosen metric at that eval), then the
grouping keys' values under their short names (``kernel``, ``normalization``, ...) as extra columns. Rows
are in group order, then seed, then step. A run that stopped or failed early simply has fewer rows (the
replay reads that as a run that failed there); a missing value is an absent row, never a zero.
"""

from __future__ import annotations

import os

import polars as pl

from .grouping import Grouping, GroupingError, short_name
from .load import Results, format_value

VALUE_COLUMN = "fid"  # the replay's column name, whatever metric fills it


def curves_frame(res: Results, grouping: Grouping, metric: str = "eval/fid") -> pl.DataFrame:
    """The curves of ``metric`` per run (see the module docstring)."""
    rows = res.tidy.filter(pl.col("metric") == metric)
    if rows.height == 0:
        present = ", ".join(sorted(res.tidy["metric"].unique().to_list())) or "nothing"
        raise GroupingError(f"no run records the metric {metric!r}; the runs record: {present}")
    missing = rows.filter(pl.col("images_seen").is_null())
    if missing.height:
        run = missing["run"][0]
        raise GroupingError(
            f"run {run} has {metric} records without images_seen ({missing.height} of them); the replay needs "
            "it: re-export those runs with a training-step key and the batch size, or leave them out with --where"
        )
    keys = {k: short_name(k) for k in grouping.by}
    taken = {"group", "seed", "step", "images_seen", VALUE_COLUMN}
    if len(set(keys.values())) < len(keys) or set(keys.values()) & taken:
        keys = {k: k for k in grouping.by}  # short names clash: keep the dotted keys
    order = {g: i for i, g in enumerate(grouping.labels)}
    per_run = {"run": [], "group": [], **{v: [] for v in keys.values()}}
    for row in grouping.runs.iter_rows(named=True):
        per_run["run"].append(row["run"])
        per_run["group"].append(row["group"])
        for k, v in keys.items():
            per_run[v].append(None if row[k] is None else format_value(row[k]))
    runs = pl.DataFrame(per_run, schema={c: pl.String for c in per_run})
    frame = (
        rows.select("run", "seed", "step", "images_seen", pl.col("value").alias(VALUE_COLUMN))
        .join(runs, on="run")
        .with_columns(pl.col("group").replace_strict(order, return_dtype=pl.Int64).alias("_order"))
        .sort("_order", "seed", "run", "step")
    )
    if frame.select(pl.struct("group", "seed").n_unique()).item() != frame.select(pl.struct("run").n_unique()).item():
        raise GroupingError(
            "several runs share a group and a seed; group them with --by so that each (group, seed) is one run"
        )
    return frame.select("group", "seed", "step", "images_seen", VALUE_COLUMN, *keys.values())


def write_curves(res: Results, grouping: Grouping, path: str | os.PathLike, metric: str = "eval/fid") -> int:
    """Write :func:`curves_frame` as CSV to ``path``; return its number of rows."""
    frame = curves_frame(res, grouping, metric)
    frame.write_csv(path)
    return frame.height
