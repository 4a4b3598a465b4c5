"""Markdown for ``Table``s (the report's shape: ``| setting | ... |`` with right-aligned numbers) and their
machine-readable CSV/Parquet files.

A cell reads ``mean ± ci`` (95% t half-width over the seeds, rounded to two significant digits, the mean
to the same place: ``38.9 ± 3.7``); with n = 2 the interval is not stated (``38.9 ⚠``: t = 12.7 makes it
mostly noise); one value, or values that are all equal, read as the value alone (4 significant digits, or
``--digits`` decimals). ``(n=k)`` marks a cell with fewer runs than its row, ``†`` a cell where a run's
merged history has stages without the metric, ``‡`` (matched-step tables) runs of the row that ended before
the step and are left out. A row resting on one seed is labelled ``(1 seed, preliminary)``. Columns
without a value in any row are dropped (a note names them). The CSV/Parquet files hold the cells unrounded.
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

from .tables import Table, display
from .verdict import Verdict

PRELIMINARY = "(1 seed, preliminary)"
MISSING = "—"
FEW = "⚠"  # n = 2: an interval from two values (t = 12.7) is not stated
SIGNIFICANT = 4  # significant digits of a value without an interval (n = 1, or equal values)


def decimals_of(ci: float) -> int:
    """Decimals that keep two significant digits of an interval half-width (negative: round to tens...)."""
    return 1 - math.floor(math.log10(abs(ci)))


def format_value(x: float, digits: int | None = None) -> str:
    """A value without an interval: ``digits`` decimals when given, else 4 significant digits (trailing
    zeros dropped)."""
    if digits is not None:
        return format_rounded(x, digits)
    digits = SIGNIFICANT - 1 - math.floor(math.log10(abs(x))) if x != 0 and math.isfinite(x) else 0
    return _trim(format_rounded(x, digits))


def _trim(text: str) -> str:
    """``4.100`` -> ``4.1``, ``65.00`` -> ``65`` (zeros that no interval vouches for)."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_rounded(x: float, decimals: int) -> str:
    """``x`` rounded to ``decimals`` (negative: to tens, hundreds, ...), never ``-0``."""
    if decimals <= 0:
        text = f"{round(x, decimals):.0f}"
    else:
        text = f"{x:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def format_estimate(mean: float, ci: float | None, n: int, digits: int | None = None) -> str:
    """``38.9 ± 3.7``: the interval to two significant digits and the mean to the same decimal place;
    for n = 2 the mean at that place (at least three significant digits) and ``⚠`` instead of the interval;
    without an interval (n = 1, equal values) the value alone (:func:`format_value`)."""
    if n < 2 or ci is None or ci == 0 or not math.isfinite(ci):
        return format_value(mean, digits)
    d = decimals_of(ci)
    if n < 3:
        if mean != 0:
            d = max(d, 2 - math.floor(math.log10(abs(mean))))
        return f"{_trim(format_rounded(mean, d))} {FEW}"
    return f"{format_rounded(mean, d)} ± {format_rounded(ci, d)}"


def format_cell(cell: dict, digits: int | None, row_n: int) -> str:
    """Text of one cell (a row of ``Table.cells``)."""
    if cell is None or cell["n"] == 0:
        text = MISSING
    else:
        text = format_estimate(cell["mean"], cell["ci95"], cell["n"], digits)
        if cell["n"] != row_n:
            text += f" (n={cell['n']})"
        if cell["missing_stages"]:
            text += " †"
    if cell is not None and cell.get("ended_before"):
        text += " ‡"
    return text


def row_size(table: Table, label: str) -> int:
    if table.paired:
        return int(table.cells.filter(pl.col("group") == label)["n"].max() or 0)
    return table.grouping.size(label)


def row_preliminary(table: Table, label: str) -> bool:
    if table.paired:  # one pair: preliminary; none: its cells say so ("—")
        return int(table.cells.filter(pl.col("group") == label)["seeds"].max() or 0) == 1
    return table.grouping.preliminary(label)


def shown_headers(table: Table) -> tuple[list[str], list[str]]:
    """``(headers with a value in some row, headers with none)``: all-empty columns are not shown."""
    filled = set(table.cells.filter(pl.col("n") > 0)["column"].to_list())
    return [h for h in table.headers if h in filled], [h for h in table.headers if h not in filled]


def render_table(table: Table, digits: int | None = None, first_header: str = "setting") -> str:
    """The table as markdown: a ``## title`` line, the table, then its notes as a list."""
    cells = {(r["group"], r["column"]): r for r in table.cells.iter_rows(named=True)}
    headers, empty = shown_headers(table)
    lines = [f"## {table.title}", ""]
    lines.append("| " + " | ".join([first_header, "n", *headers]) + " |")
    lines.append("|---|" + "---:|" * (len(headers) + 1))
    for label in table.groups:
        n = row_size(table, label)
        name = f"{label} {PRELIMINARY}" if row_preliminary(table, label) else label
        texts = [format_cell(cells.get((label, h)), table.digits.get(h.split(" [")[0], digits), n) for h in headers]
        lines.append("| " + " | ".join([name, str(n), *texts]) + " |")
    notes = list(table.notes)
    if any(c["n"] == 2 and c["ci95"] for c in cells.values() if c["column"] in headers):
        notes.append(f"{FEW}: n = 2, whose 95% interval (t = 12.7 × sd / √2) is too wide to state; add a seed "
                     "(the .csv/.parquet files have every interval, unrounded).")  # fmt: skip
    if empty:
        notes.append(f"Not shown: {', '.join(empty)} (no run has a value).")
    if notes:
        lines.append("")
        lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines) + "\n"


def write_table(table: Table, path_stem: str | Path, digits: int | None = None) -> list[Path]:
    """``<stem>.md``, ``<stem>.csv`` and ``<stem>.parquet`` (the cells, one row per group and column)."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    md, csv, parquet = (stem.with_suffix(s) for s in (".md", ".csv", ".parquet"))
    md.write_text(render_table(table, digits))
    cells = table.cells.with_columns(pl.lit(table.title).alias("table"))
    cells.write_csv(csv)
    cells.write_parquet(parquet)
    return [md, csv, parquet]


def render_verdict(v: Verdict, digits: int | None = None) -> str:
    """The verdict as markdown: the ranked table, the one-sentence answer, then the footnotes."""
    name = f"{display(v.metric)} @{v.step}" if v.step is not None else display(v.metric)
    better = "lower" if v.mode == "min" else "higher"
    lines = [f"## Verdict: {name} ({better} is better)", ""]
    head = ["rank", "configuration", "status", "seeds finished", name, "vs best"]
    head += ["scheduler"] if v.scheduler else []
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|---:|---|---|---:|---:|---|" + ("---|" if v.scheduler else ""))
    few = False
    for r in v.rows:
        if r.get("n"):
            value = format_estimate(r["mean"], r["ci95"], r["n"], digits)
            value += f" (n={r['n']})" if r["n"] != r["started"] else ""
            few = few or (r["n"] == 2 and bool(r["ci95"]))
        else:
            value = MISSING
        cells = [str(r["rank"] or MISSING), r["group"], r["status"], f"{r['finished']}/{r['started']}", value]
        cells += [r["decision"]] + ([r.get("scheduler") or MISSING] if v.scheduler else [])
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"**{v.sentence[0].upper()}{v.sentence[1:]}**", ""]
    notes = list(v.notes)
    if few:
        notes.append(f"{FEW}: n = 2, whose 95% interval (t = 12.7 × sd / √2) is too wide to state.")
    lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines) + "\n"
