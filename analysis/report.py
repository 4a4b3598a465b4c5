"""One analysis end to end: load, group, the report's tables, markdown, files and plots.

``analyze(...)`` computes; ``Analysis.markdown()`` renders (the verdict first); ``write(analysis, out)``
writes ``report.md``, the verdict and each table as ``.md``/``.csv``/``.parquet`` (unrounded), the tidy and
per-run frames as Parquet, and the PNG plots.

Tables: the matched step at the common step (the last step every finished run reached) and at each
``--at-step``; the run-end summary (a group whose runs end at different steps gets a row per end step);
with ``--baseline``, paired differences at the same steps.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from .grouping import Grouping, GroupingError, make_grouping, short_name, split_by_end, where
from .load import Results, load
from .protocol import protocol_notes, yardstick_note
from .render import render_table, render_verdict, write_table
from .status import common_step, experiment_dirs
from .tables import REPORT_METRICS, SUMMARY_COLUMNS, Table, group_table, matched_columns, paired_table
from .verdict import Verdict, read_scheduler_status, verdict


@dataclass
class Analysis:
    results: Results
    grouping: Grouping
    tables: dict[str, Table]  # file stem -> table, in report order
    at_steps: list[int]
    metrics: list[str]
    sources: list[str] = field(default_factory=list)
    verdict: Verdict | None = None

    def header(self) -> list[str]:
        runs, g = self.results.runs, self.grouping
        seeds = sorted({g.seeds(label) for label in g.labels})
        by = ", ".join(short_name(k) for k in g.by) or "(none: all runs in one group)"
        lines = [
            f"Experiments: {', '.join(runs['experiment'].unique(maintain_order=True).to_list())}",
            f"Runs: {runs.height} in {len(g.labels)} groups, grouped by {by}; "
            f"seeds per group: {', '.join(map(str, seeds))}; n counts {g.n_counts}.",
        ]
        if any(g.preliminary(label) for label in g.labels):
            lines.append("Rows resting on one seed are preliminary: run at least two seeds before concluding.")
        return lines + protocol_notes(self.results) + yardstick_note(self.results)

    def markdown(self, digits: int | None = None) -> str:
        parts = ["# raydrift analyze", ""]
        parts += [render_verdict(self.verdict, digits)] if self.verdict is not None else []
        parts += [*(f"{line}  " for line in self.header()), ""]
        parts += [render_table(t, digits) for t in self.tables.values()]
        return "\n".join(parts)


def analyze(
    sources: Sequence[str | os.PathLike],
    *,
    by: Sequence[str] | None = None,
    where_: Sequence[str] = (),
    label: str | None = None,
    at_steps: Sequence[int] = (),
    baseline: str | None = None,
    metrics: Sequence[str] = REPORT_METRICS,
    rank_by: str | None = None,
) -> Analysis:
    """The report's tables for the runs under ``sources`` (see ``raydrift analyze --help``)."""
    res = load(sources)
    if where_:
        res = where(res, where_)
    present = set(res.tidy["metric"].unique().to_list())
    unknown = [m for m in metrics if m not in present and m not in REPORT_METRICS]
    if unknown:
        raise GroupingError(f"no run records the metric {unknown[0]!r}; the runs record: {', '.join(sorted(present))}")
    grouping = make_grouping(res, by, label)
    over = grouping.n_counts
    common = common_step(res.runs)
    steps = list(dict.fromkeys([*([common] if common is not None else []), *at_steps]))
    tables = {}
    for n in steps:
        which = "the last step every finished run reached; " if n == common else ""
        title = (
            f"Matched step {n} ({which}each run's last value at or before step {n}, runs that ended before it "
            f"left out; mean ± 95% CI over {over})"
        )
        tables[f"matched_step_{n}"] = group_table(res, grouping, matched_columns(n, metrics), title)
    title = f"Summary per group at run end (a row's runs end at one step; mean ± 95% CI over {over})"
    tables["summary"] = group_table(res, split_by_end(grouping, res), SUMMARY_COLUMNS, title)
    if baseline is not None:
        base = grouping.baselines(baseline)
        name = next(iter(base.values())) if len(set(base.values())) == 1 else baseline
        for n in steps:
            title = f"Paired difference vs `{name}` at step {n} (group - baseline on shared seeds, mean ± 95% CI)"
            tables[f"paired_step_{n}"] = paired_table(res, grouping, matched_columns(n, metrics), base, title)
    dirs = [d for paths in res.runs["paths"].to_list() for d in experiment_dirs(paths or "")]
    v = verdict(res, grouping, rank_by, scheduler_status=read_scheduler_status([*sources, *dirs]))
    return Analysis(res, grouping, tables, steps, list(metrics), [str(s) for s in sources], v)


def write(analysis: Analysis, out: str | os.PathLike, digits: int | None = None, plots: bool = True) -> list[Path]:
    """Write the report, tables, frames and (``plots``) PNGs under ``out``; return the files written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = out / "report.md"
    report.write_text(analysis.markdown(digits))
    files = [report]
    if analysis.verdict is not None:
        (out / "verdict.md").write_text(render_verdict(analysis.verdict, digits))
        frame = analysis.verdict.frame()
        frame.write_csv(out / "verdict.csv")
        frame.write_parquet(out / "verdict.parquet")
        files += [out / "verdict.md", out / "verdict.csv", out / "verdict.parquet"]
    for stem, table in analysis.tables.items():
        files += write_table(table, out / stem, digits)
    res = analysis.results
    res.tidy.write_parquet(out / "tidy.parquet")
    res.runs.join(analysis.grouping.runs.select("run", "group"), on="run").write_parquet(out / "runs.parquet")
    files += [out / "tidy.parquet", out / "runs.parquet"]
    if plots:
        files += make_plots(analysis, out)
    return files


def make_plots(analysis: Analysis, out: Path) -> list[Path]:
    from .plots import plot_curves, plot_grids

    res, g = analysis.results, analysis.grouping
    files = []
    logged = set(res.tidy["metric"].unique().to_list())
    for metric in analysis.metrics:
        if metric in logged:
            files += plot_curves(res, g, metric, out / f"curve_{metric.replace('/', '_')}.png")
    steps = analysis.at_steps or [int(res.runs["final_step"].min())]
    for step in steps:
        path = plot_grids(res, g, step, out / f"grids_step_{step}.png")
        if path is not None:
            files.append(path)
    return files


def runs_listing(res: Results, grouping: Grouping) -> pl.DataFrame:
    """What ``--dry-run`` prints: each run with its group, seed, stages, final step and how it ended."""
    cols = ["group", "run", "seed", "stages", "final_step", "status_note", "group_id", "experiment"]
    order = pl.DataFrame({"group": grouping.labels, "order": range(len(grouping.labels))})
    runs = res.runs.join(grouping.runs.select("run", "group"), on="run").join(order, on="group")
    return runs.sort("order", "seed").select(cols)


def verdict_markdown(sources: Sequence[str | os.PathLike], digits: int | None = None) -> str:
    """The verdict alone (what ``raydrift tune`` prints when a study ends), grouped by the swept keys."""
    res = load(sources)
    grouping = make_grouping(res)
    dirs = [d for paths in res.runs["paths"].to_list() for d in experiment_dirs(paths or "")]
    return render_verdict(verdict(res, grouping, scheduler_status=read_scheduler_status([*sources, *dirs])), digits)
