"""The report's tables as data: per-run statistics, then mean +/- 95% CI per group, at a matched step, and
paired against a baseline group.

Every table is a ``Table`` whose ``cells`` frame has one row per (group, column): ``n`` (runs with a
value), ``seeds``, ``mean``, ``sd``, ``ci95`` (t half-width; null for n < 2), ``lo``, ``hi`` and flags
(``preliminary``: fewer than two seeds; ``missing_stages``: a run's merged history has a stage without this
metric; ``ended_before``: at a matched step, how many of the row's runs ended before it and are left out,
never carried forward). FID/IS columns are split by protocol when runs differ (``analysis.protocol``).
``analysis.render`` turns a ``Table`` into markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from .grouping import Grouping
from .load import Results, is_protocol_metric
from .merge import missing_stages
from .protocol import protocol_ids
from .stats import Estimate, mean_ci

DISPLAY = {"eval/fid": "FID", "eval/is": "IS", "eval/diversity": "diversity"}


def display(metric: str) -> str:
    return DISPLAY.get(metric, metric)


@dataclass(frozen=True)
class Column:
    """A table column: ``stat`` of ``metric`` per run (``final_step``, ``min``, ``max``, ``last``, ``at``)."""

    stat: str
    metric: str | None = None
    step: int | None = None  # for ``at``

    @property
    def header(self) -> str:
        if self.stat == "final_step":
            return "final step"
        if self.stat == "at":
            return f"{display(self.metric)} @{self.step}"
        return f"{self.stat} {display(self.metric)}"

    @property
    def digits(self) -> int | None:
        """Fixed decimals for step-valued columns; None = the table's default."""
        return 0 if self.stat == "final_step" else None


REPORT_METRICS = ("train/loss", "eval/fid", "eval/diversity", "eval/is")
SUMMARY_COLUMNS = (
    Column("final_step"),
    Column("min", "train/loss"),
    Column("last", "train/loss"),
    Column("min", "eval/fid"),
    Column("last", "eval/fid"),
    Column("max", "eval/is"),
    Column("last", "eval/is"),
)


def matched_columns(step: int, metrics: Sequence[str] = REPORT_METRICS) -> list[Column]:
    return [Column("at", m, step) for m in metrics]


@dataclass
class Table:
    title: str
    headers: list[str]  # in order; FID/IS headers carry " [P1]" etc. when protocols differ
    groups: list[str]  # row labels in order
    cells: pl.DataFrame
    grouping: Grouping
    notes: list[str] = field(default_factory=list)
    digits: dict[str, int] = field(default_factory=dict)  # header -> fixed decimals
    paired: bool = False


def run_values(res: Results, columns: Sequence[Column]) -> pl.DataFrame:
    """One row per (run, column, protocol): ``value``, ``step`` it came from, ``ended_early``, ``missing``."""
    ids = protocol_ids(res)
    parts = []
    metrics = sorted({c.metric for c in columns if c.metric})
    gaps = missing_stages(res.steps, res.tidy, metrics)
    for col in columns:
        if col.stat == "final_step":
            part = res.runs.select(
                "run",
                pl.lit(None, pl.String).alias("protocol"),
                pl.col("final_step").cast(pl.Float64).alias("value"),
                pl.col("final_step").alias("step"),
                pl.lit(False).alias("ended_early"),
                pl.lit(False).alias("missing"),
                pl.lit(None, pl.String).alias("pid"),
            )
        else:
            part = _metric_values(res, col, gaps, ids)
        parts.append(part.with_columns(pl.lit(col.header).alias("column")))
    return pl.concat(parts, how="vertical_relaxed")


def _metric_values(res: Results, col: Column, gaps: pl.DataFrame, ids: dict[str | None, str]) -> pl.DataFrame:
    rows = res.tidy.filter(pl.col("metric") == col.metric).sort("run", "step")
    gap_runs = gaps.filter(pl.col("metric") == col.metric)
    ended = None
    if col.stat == "at":
        # Runs that ended before the step are not in its cells: a row with no value says why (ended_early).
        before = res.runs.filter(pl.col("final_step") < col.step).select("run", pl.col("final_step").alias("step"))
        last = rows.group_by("run", maintain_order=True).agg(pl.col("protocol").last())
        ended = before.join(last, on="run", how="left").with_columns(
            pl.lit(None, pl.Float64).alias("value"), pl.lit(True).alias("ended_early")
        )
        rows = rows.filter((pl.col("step") <= col.step) & ~pl.col("run").is_in(before["run"].implode()))
        gap_runs = gap_runs.filter(pl.col("first_step") <= col.step)
    agg = {
        "min": pl.col("value").min(),
        "max": pl.col("value").max(),
        "last": pl.col("value").last(),
        "at": pl.col("value").last(),
    }[col.stat]
    extreme_step = pl.col("step").get(pl.col("value").arg_min() if col.stat == "min" else pl.col("value").arg_max())
    step = extreme_step if col.stat in ("min", "max") else pl.col("step").last()
    out = rows.group_by("run", "protocol", maintain_order=True).agg(agg.alias("value"), step.alias("step"))
    out = out.with_columns(pl.lit(False).alias("ended_early"))
    if ended is not None:
        out = pl.concat([out, ended.select(out.columns)], how="vertical_relaxed")
    pid = pl.lit(None, pl.String)
    if ids and is_protocol_metric(col.metric):
        pid = pl.col("protocol").map_elements(ids.get, return_dtype=pl.String, skip_nulls=False)
    return out.with_columns(pl.col("run").is_in(gap_runs["run"].implode()).alias("missing"), pid.alias("pid"))


def _cell(label: str, column: str, pid: str | None, est: Estimate, seeds: int, runs: list[str], **flags) -> dict:
    return {
        "group": label,
        "column": column,
        "protocol": pid,
        "n": est.n,
        "seeds": seeds,
        "mean": est.mean,
        "sd": est.sd,
        "ci95": est.ci,
        "lo": est.lo,
        "hi": est.hi,
        "preliminary": seeds < 2,
        "missing_stages": bool(flags.get("missing", False)),
        "ended_before": int(flags.get("ended_before", 0)),
        "runs": ", ".join(runs),
    }


_CELL_SCHEMA = {"group": pl.String, "column": pl.String, "protocol": pl.String, "n": pl.Int64}
_CELL_SCHEMA |= {"seeds": pl.Int64, "mean": pl.Float64, "sd": pl.Float64, "ci95": pl.Float64}
_CELL_SCHEMA |= {"lo": pl.Float64, "hi": pl.Float64, "preliminary": pl.Boolean, "missing_stages": pl.Boolean}
_CELL_SCHEMA |= {"ended_before": pl.Int64, "runs": pl.String}


def _headers(values: pl.DataFrame, columns: Sequence[Column]) -> tuple[list[str], pl.DataFrame]:
    """Headers in column order, one per protocol for FID/IS columns when protocols differ."""
    values = values.with_columns(
        pl.when(pl.col("pid").is_not_null())
        .then(pl.format("{} [{}]", pl.col("column"), pl.col("pid")))
        .otherwise(pl.col("column"))
        .alias("header")
    )
    headers = []
    for col in columns:
        found = values.filter(pl.col("column") == col.header).unique("header")
        found = found.sort(pl.col("pid").str.slice(1).cast(pl.Int64), nulls_last=True)["header"].to_list()
        headers.extend(found or [col.header])
    return headers, values


def group_table(res: Results, grouping: Grouping, columns: Sequence[Column], title: str) -> Table:
    """Mean +/- 95% CI per group for each of ``columns``."""
    values = run_values(res, columns).join(grouping.runs.select("run", "group", "seed"), on="run")
    headers, values = _headers(values, columns)
    rows = []
    for (label, header), part in values.group_by("group", "header", maintain_order=True):
        kept = part.filter(pl.col("value").is_not_null())
        est = mean_ci(kept["value"].to_list())
        flags = {"missing": kept["missing"].any(), "ended_before": part["ended_early"].sum()}
        rows.append(_cell(label, header, part["pid"][0], est, kept["seed"].n_unique(), kept["run"].to_list(), **flags))
    cells = pl.DataFrame(rows, schema=_CELL_SCHEMA)
    digits = {c.header: c.digits for c in columns if c.digits is not None}
    table = Table(title, headers, grouping.labels, cells, grouping, digits=digits)
    table.notes = _notes(res, values, grouping, columns)
    return table


def paired_table(
    res: Results, grouping: Grouping, columns: Sequence[Column], baseline: str | dict[str, str], title: str
) -> Table:
    """Per shared pair key (the seed, plus pooled axes): value(group) - value(baseline); mean +/- 95% CI.

    ``baseline``: one group for all, or ``{group: its baseline group}`` (see :meth:`Grouping.baselines`)."""
    if isinstance(baseline, str):
        baseline = {g: baseline for g in grouping.labels if g != baseline}
    keys = grouping.pair_keys
    values = run_values(res, columns).join(grouping.runs.select("run", "group", *keys), on="run")
    headers, values = _headers(values, columns)
    values = values.with_columns(pl.col("pid").fill_null(""))
    per_key = values.group_by("group", "header", "pid", *keys, maintain_order=True).agg(
        pl.col("value").mean(), pl.col("run"), pl.col("missing").any(), pl.col("ended_early").any()
    )
    rows, paired_runs = [], set()
    labels = [g for g in grouping.labels if g in baseline]
    for label in labels:
        base = per_key.filter(pl.col("group") == baseline[label]).drop("group")
        pairs = per_key.filter(pl.col("group") == label).join(
            base, on=["header", "pid", *keys], suffix="_base", nulls_equal=False
        )
        lost = pairs.filter(pl.col("ended_early") | pl.col("ended_early_base"))
        pairs = pairs.drop_nulls(["value", "value_base"])
        paired_runs.update(r for col in ("run", "run_base") for runs in lost[col] for r in runs)
        paired_runs.update(r for col in ("run", "run_base") for runs in pairs[col] for r in runs)
        for header in headers:
            part = pairs.filter(pl.col("header") == header)
            diffs = (part["value"] - part["value_base"]).to_list()
            runs = [f"{'+'.join(a)} - {'+'.join(b)}" for a, b in zip(part["run"], part["run_base"])]
            pid = (part["pid"][0] or None) if part.height else None
            flags = {
                "missing": (part["missing"] | part["missing_base"]).any(),
                "ended_before": lost.filter(pl.col("header") == header).height,
            }
            rows.append(_cell(label, header, pid, mean_ci(diffs), part["seed"].n_unique(), runs, **flags))
    cells = pl.DataFrame(rows, schema=_CELL_SCHEMA)
    digits = {c.header: c.digits for c in columns if c.digits is not None}
    table = Table(title, headers, labels, cells, grouping, digits=digits)
    table.paired = True
    bases = sorted(set(baseline.values()), key=grouping.labels.index)
    against = f"`{bases[0]}`" if len(bases) == 1 else "the baseline group with the same other settings"
    table.notes = [f"Paired on: {', '.join(keys)}; n = number of pairs; difference = group - {against}."]
    if len(bases) > 1:
        table.notes += [f"`{g}` - `{b}`" for g, b in baseline.items()]
    table.notes += _notes(res, values.filter(pl.col("run").is_in(list(paired_runs))), grouping, columns)
    return table


def _notes(res: Results, values: pl.DataFrame, grouping: Grouping, columns: Sequence[Column]) -> list[str]:
    """Footnotes: pooled configs, repeated seeds, stages without a metric (†), runs ending early (‡)."""
    notes = []
    for label, keys in grouping.pooled.items():
        if keys:
            notes.append(f"Row `{label}` pools runs that differ in {', '.join(keys)}; n counts runs.")
    units = grouping.runs.group_by("group", *grouping.pair_keys, maintain_order=True).len()
    for row in units.filter(pl.col("len") > 1).iter_rows(named=True):
        unit = ", ".join(f"{k}={row[k]}" for k in grouping.pair_keys)
        notes.append(f"Row `{row['group']}` has {row['len']} runs with {unit}; n counts runs, pairs use their mean.")
    at = next((c.step for c in columns if c.stat == "at"), None)
    metrics = sorted({c.metric for c in columns if c.metric})
    gaps = missing_stages(res.steps, res.tidy, metrics)
    if at is not None:
        gaps = gaps.filter(pl.col("first_step") <= at)
    flagged = values.filter(pl.col("missing") & pl.col("value").is_not_null())["run"].unique().implode()
    by_stage = gaps.filter(pl.col("run").is_in(flagged))
    by_stage = by_stage.group_by("run", "stage", "first_step", "last_step", maintain_order=True).agg("metric")
    by_stage = by_stage.group_by("stage", "first_step", "last_step", "metric", maintain_order=True).agg("run")
    for row in by_stage.iter_rows(named=True):
        runs = row["run"]
        who = f"run {runs[0]}" if len(runs) == 1 else f"{len(runs)} runs ({', '.join(runs)})"
        notes.append(
            f"† {who}, stage {row['stage']} (steps {row['first_step']}-{row['last_step']}): "
            f"no {', '.join(row['metric'])} logged; the cell uses the other stages."
        )
    if at is None:
        return notes
    notes += ended_notes(res, grouping, values.filter(pl.col("ended_early"))["run"].unique().to_list(), at)
    earlier = values.filter(~pl.col("ended_early") & (pl.col("step") < at) & pl.col("value").is_not_null())
    rest = earlier.group_by("header", "step", maintain_order=True).agg(pl.col("run").unique().sort())
    rest = rest.group_by("step", "run", maintain_order=True).agg("header").sort("step")  # one note per run set
    for row in rest.iter_rows(named=True):
        notes.append(
            f"{', '.join(row['header'])}: {who_ran(grouping, row['run'])} logged nothing at step {at} (they went on "
            f"past it); their last value before it (step {row['step']}) is used."
        )
    return notes


def who_ran(grouping: Grouping, runs: Sequence[str]) -> str:
    """``kernel=laplace seeds 0, 1; kernel=gaussian seed 2``: runs named by their group and seed."""
    rows = grouping.runs.filter(pl.col("run").is_in(list(runs)))
    order = {g: i for i, g in enumerate(grouping.labels)}
    parts = []
    for (label,), part in sorted(rows.group_by("group"), key=lambda x: order.get(x[0][0], 0)):
        seeds = sorted(str(s) for s in part["seed"].to_list())
        if len(set(seeds)) != len(seeds) or None in part["seed"].to_list():
            parts.append(f"`{label}` runs {', '.join(sorted(part['run'].to_list()))}")
        else:
            parts.append(f"`{label}` seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}")
    return "; ".join(parts)


def ended_notes(res: Results, grouping: Grouping, runs: Sequence[str], at: int) -> list[str]:
    """‡ notes: the runs that ended before step ``at``, grouped by how they ended."""
    ended = res.runs.filter(pl.col("run").is_in(list(runs)))
    if ended.height == 0:
        return []
    head = f"‡ Left out of the step-{at} cells (n counts the runs that reached it; nothing is carried forward)"
    lines = []
    for row in ended.group_by("status_note", maintain_order=True).agg("run").sort("status_note").iter_rows(named=True):
        k = len(row["run"])
        lines.append(f"{k} run{'s' if k > 1 else ''} {row['status_note']}: {who_ran(grouping, row['run'])}.")
    if len(lines) == 1:
        return [f"{head}: {lines[0]}"]
    return [f"{head}: {ended.height} runs that ended before step {at}."] + [f"‡ {line}" for line in lines]
