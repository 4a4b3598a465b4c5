"""The FID/IS protocol check: FIDs from different feature networks, sample counts or reference splits are
never pooled. Each distinct protocol (``eval/fid_net``, ``eval/fid_samples``, ``eval/fid_ref``,
``eval/fid_ref_n`` of an eval record) gets a short id (P1, P2, ... in order of appearance); tables split
FID/IS columns by it, and the notes say which runs use which protocol and in what the protocols differ.
"""

from __future__ import annotations

import polars as pl

from .load import PROTOCOL_PREFIXES, PROVENANCE, Results

NOT_RECORDED = "not recorded"


def protocol_runs(res: Results) -> pl.DataFrame:
    """``protocol, run, first_step, last_step`` plus the provenance fields, for FID/IS rows."""
    rows = res.tidy.filter(pl.any_horizontal(pl.col("metric").str.starts_with(p) for p in PROTOCOL_PREFIXES))
    return (
        rows.group_by("protocol", "run", maintain_order=True)
        .agg(
            pl.col("step").min().alias("first_step"),
            pl.col("step").max().alias("last_step"),
            *(pl.col(f).first() for f in PROVENANCE.values()),
        )
        .sort("run", "first_step")
    )


def protocol_ids(res: Results) -> dict[str | None, str]:
    """``{protocol string or None: "P1", ...}`` in order of first appearance; {} when there is at most one."""
    seen = protocol_runs(res)["protocol"].unique(maintain_order=True).to_list()
    return {p: f"P{i + 1}" for i, p in enumerate(seen)} if len(seen) > 1 else {}


def protocol_notes(res: Results) -> list[str]:
    """Human-readable protocol summary: the one protocol, or how and where the protocols differ."""
    table = protocol_runs(res)
    protocols = table["protocol"].unique(maintain_order=True).to_list()
    if not protocols:
        return []
    if len(protocols) == 1:
        p = protocols[0]
        if p is None:
            return [
                "FID/IS protocol: not recorded by these runs (no eval/fid_net, eval/fid_samples, "
                "eval/fid_ref), so their comparability cannot be checked."
            ]
        return [f"FID/IS protocol (all runs): {p}."]
    ids = protocol_ids(res)
    notes = [
        "FID/IS protocols differ between runs, so FID/IS values are never pooled across them: each "
        "protocol has its own columns, marked [P1], [P2], ..."
    ]
    for p in protocols:
        runs = table.filter(_is(p))["run"].unique(maintain_order=True).to_list()
        notes.append(f"{ids[p]} = {p or NOT_RECORDED}: runs {', '.join(runs)}.")
    diffs = []
    for field in PROVENANCE.values():
        per = {ids[p]: table.filter(_is(p))[field][0] for p in protocols}
        if len(set(per.values())) > 1:
            diffs.append(f"{field} (" + ", ".join(f"{k}: {_show(v)}" for k, v in per.items()) + ")")
    if diffs:
        notes.append("They differ in " + "; ".join(diffs) + ".")
    switching = table.group_by("run", maintain_order=True).agg(pl.col("protocol"), pl.col("first_step"))
    for row in switching.filter(pl.col("protocol").list.len() > 1).iter_rows(named=True):
        steps = ", ".join(f"{ids[p]} from step {s}" for p, s in zip(row["protocol"], row["first_step"]))
        notes.append(f"Run {row['run']} changes protocol during training: {steps}.")
    return notes


def _is(p: str | None) -> pl.Expr:
    return pl.col("protocol").is_null() if p is None else pl.col("protocol") == p


def _show(v) -> str:
    return NOT_RECORDED if v is None else str(v)


YARDSTICKS = {
    "eval/fid_classmean": "class-mean generator FID",
    "eval/fid_real": "held-out real FID",
    "eval/diversity_real": "real within-class diversity",
}


def yardstick_note(res: Results) -> list[str]:
    """The yardsticks the evaluations logged beside FID and diversity (a class-mean generator's FID, held-out
    real data's FID and within-class diversity): one value, or the range where runs or protocols differ."""
    parts = []
    for metric, name in YARDSTICKS.items():
        values = res.tidy.filter(pl.col("metric") == metric)["value"].drop_nans().drop_nulls()
        if values.len():
            lo, hi = values.min(), values.max()
            parts.append(f"{name} {lo:.3g}" if f"{lo:.3g}" == f"{hi:.3g}" else f"{name} {lo:.3g}-{hi:.3g}")
    return [f"Yardsticks: {', '.join(parts)}."] if parts else []
