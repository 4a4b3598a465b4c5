"""The polars layer behind ``raydrift analyze``: seed-averaged, matched-step and paired tables with 95% t
intervals, the FID protocol check, and plots, from Tune experiment directories and W&B exports.

Public API (imported lazily, so ``import analysis.cli`` stays light)::

    from analysis import load, make_grouping, group_table, paired_table, matched_columns, SUMMARY_COLUMNS
    res = load(["runs/kernels"])                       # Results: .tidy (long), .runs, .steps, .swept
    g = make_grouping(res, by=["kernel"])              # groups, labels, pair keys
    table = group_table(res, g, matched_columns(16000), "FID at 16k")
    print(render_table(table)); table.cells            # markdown; a polars frame of mean, ci95, n, ...
    analysis = analyze(["runs/kernels"], at_steps=[16000], baseline="kernel=laplace"); write(analysis, "out")

See ``analysis/README.md`` for the data layout, the W&B export and the statistics.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load": "load",
    "Results": "load",
    "find_run_dirs": "load",
    "merge_stages": "merge",
    "mean_ci": "stats",
    "paired_ci": "stats",
    "Estimate": "stats",
    "make_grouping": "grouping",
    "Grouping": "grouping",
    "where": "grouping",
    "Column": "tables",
    "Table": "tables",
    "SUMMARY_COLUMNS": "tables",
    "matched_columns": "tables",
    "group_table": "tables",
    "paired_table": "tables",
    "protocol_notes": "protocol",
    "render_table": "render",
    "write_table": "render",
    "plot_curves": "plots",
    "curves_frame": "curves",
    "write_curves": "curves",
    "plot_grids": "plots",
    "analyze": "report",
    "write": "report",
    "Analysis": "report",
    "export_runs": "wandb_export",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    return getattr(importlib.import_module(f"analysis.{_EXPORTS[name]}"), name)
