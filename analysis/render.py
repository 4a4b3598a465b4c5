"""Markdown for ``Table``s (the report's shape: ``| setting | ... |`` with right-aligned numbers) and their
machine-readable CSV/Parquet files.

A cell reads ``mean ± ci`` (95% t half-width over the seeds); one value, or values that are all equal,
read as the value alone. ``(n=k)`` marks a cell with fewer runs than its row, ``†`` a cell where a run's
merged history has stages without the metric, ``‡`` (matched-step tables) a run that ended earlier. A row
resting on one seed is labelled ``(1 seed, preliminary)``.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from .tables import Table

PRELIMINARY = "(1 seed, preliminary)"
MISSING = "—"


def format_number(x: float, digits: int) -> str:
    return f"{x:.{digits}f}"


def format_cell(cell: dict, digits: int, row_n: int) -> str:
    """Text of one cell (a row of ``Table.cells``)."""
    if cell is None or cell["n"] == 0:
        return MISSING
    text = format_number(cell["mean"], digits)
    if cell["n"] >= 2 and cell["sd"] > 0:
        text += f" ± {format_number(cell['ci95'], digits)}"
    if cell["n"] != row_n:
        text += f" (n={cell['n']})"
    if cell["missing_stages"]:
        text += " †"
    if cell["ended_early"]:
        text += " ‡"
    return text


def row_size(table: Table, label: str) -> int:
    if table.paired:
        return int(table.cells.filter(pl.col("group") == label)["n"].max() or 0)
    return table.grouping.size(label)


def row_preliminary(table: Table, label: str) -> bool:
    if table.paired:
        return int(table.cells.filter(pl.col("group") == label)["seeds"].max() or 0) < 2
    return table.grouping.preliminary(label)


def render_table(table: Table, digits: int = 4, first_header: str = "setting") -> str:
    """The table as markdown: a ``## title`` line, the table, then its notes as a list."""
    cells = {(r["group"], r["column"]): r for r in table.cells.iter_rows(named=True)}
    lines = [f"## {table.title}", ""]
    lines.append("| " + " | ".join([first_header, "n", *table.headers]) + " |")
    lines.append("|---|" + "---:|" * (len(table.headers) + 1))
    for label in table.groups:
        n = row_size(table, label)
        name = f"{label} {PRELIMINARY}" if row_preliminary(table, label) else label
        texts = [
            format_cell(cells.get((label, h)), table.digits.get(h.split(" [")[0], digits), n) for h in table.headers
        ]
        lines.append("| " + " | ".join([name, str(n), *texts]) + " |")
    if table.notes:
        lines.append("")
        lines.extend(f"- {note}" for note in table.notes)
    return "\n".join(lines) + "\n"


def write_table(table: Table, path_stem: str | Path, digits: int = 4) -> list[Path]:
    """``<stem>.md``, ``<stem>.csv`` and ``<stem>.parquet`` (the cells, one row per group and column)."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    md, csv, parquet = (stem.with_suffix(s) for s in (".md", ".csv", ".parquet"))
    md.write_text(render_table(table, digits))
    cells = table.cells.with_columns(pl.lit(table.title).alias("table"))
    cells.write_csv(csv)
    cells.write_parquet(parquet)
    return [md, csv, parquet]
