"""The verdict that opens ``raydrift analyze`` and ends ``raydrift tune``: configurations ranked at the
common step, each compared with the best on the seeds they share.

One row per group (configuration): how its runs ended (``analysis.status``: finished / stopped at step k
by the scheduler / failed), seeds finished out of started, the study metric at the *common step* (the last
step every finished seed reached; a run that ended before it is left out, never carried forward) as mean
± 95% t interval, its rank, and whether it is worse than the best: the paired differences (configuration
minus best, on the seeds both have; a pair key as in the paired tables) tested with a two-sided t test,
the p values Holm-adjusted over the comparisons made (family-wise error 5%). "not separable" is p >= 0.05
after the correction, or fewer than two shared seeds. A group with no value at the common step (every seed
stopped or failed earlier) is not ranked; its status says why.

A group's scheduler status (a seed-aware scheduler's own verdict, e.g. ``race.json``) is an optional
mapping ``{group label or group_id: text}``; when given it fills a ``scheduler`` column.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from .grouping import Grouping
from .load import Results, is_protocol_metric
from .protocol import protocol_ids
from .stats import holm, mean_ci, paired_test
from .status import FINISHED, common_step, study_settings
from .tables import Column, display, run_values

ALPHA = 0.05
RACE_DIR, RACE_FILE = "race", "race.json"


@dataclass
class Verdict:
    """``rows``: one dict per group, ranked groups first (see :meth:`frame` for the columns)."""

    metric: str
    mode: str  # "min" or "max"
    step: int | None
    rows: list[dict]
    comparisons: int  # tests made (pairs of configurations with at least two shared seeds)
    sentence: str
    notes: list[str] = field(default_factory=list)
    scheduler: bool = False  # whether a scheduler status column is shown

    def frame(self) -> pl.DataFrame:
        """The verdict unrounded (CSV/Parquet)."""
        schema = {"rank": pl.Int64, "group": pl.String, "status": pl.String, "finished": pl.Int64}
        schema |= {"started": pl.Int64, "n": pl.Int64, "mean": pl.Float64, "sd": pl.Float64, "ci95": pl.Float64}
        schema |= {"pairs": pl.Int64, "diff": pl.Float64, "diff_ci95": pl.Float64, "p": pl.Float64}
        schema |= {"p_holm": pl.Float64, "separable": pl.Boolean, "decision": pl.String, "scheduler": pl.String}
        rows = [{k: r.get(k) for k in schema} for r in self.rows]
        frame = pl.DataFrame(rows, schema=schema, orient="row")
        return frame.with_columns(pl.lit(self.metric).alias("metric"), pl.lit(self.step, pl.Int64).alias("step"))


def study_metric(res: Results, metric: str | None = None) -> tuple[str, str]:
    """``(metric, mode)``: ``metric`` (mode from the study when it is the study's metric, else ``max`` for
    IS-like metrics, ``min`` otherwise), or the study's (``study.json``), or FID, or the training loss."""
    study = study_settings(res.runs["paths"].to_list())
    if metric is None:
        logged = set(res.tidy["metric"].unique().to_list())
        metric = next((m for m in (study.get("metric"), "eval/fid", "train/loss") if m and m in logged), None)
        metric = metric or study.get("metric") or "eval/fid"
    if metric == study.get("metric") and study.get("mode") in ("min", "max"):
        return metric, study["mode"]
    return metric, "max" if metric.startswith("eval/is") else "min"


def verdict(
    res: Results,
    grouping: Grouping,
    metric: str | None = None,
    mode: str | None = None,
    scheduler_status: Mapping[str, str] | None = None,
    step: int | None = None,
) -> Verdict:
    """Rank ``grouping``'s groups on ``metric`` at ``step`` (default: the common step) against the best."""
    metric, default_mode = study_metric(res, metric)
    mode = mode or default_mode
    step = common_step(res.runs) if step is None else step
    sched = _by_label(grouping, scheduler_status or {})
    rows = [_status_row(res, grouping, label, sched.get(label)) for label in grouping.labels]
    if step is None:
        return Verdict(metric, mode, None, rows, 0, "no runs: nothing to rank.", scheduler=bool(sched))
    name = f"{display(metric)} @{step}"
    values = run_values(res, [Column("at", metric, step)]).filter(pl.col("value").is_not_null())
    values = values.join(grouping.runs.select("run", "group", *grouping.pair_keys), on="run")
    if is_protocol_metric(metric) and protocol_ids(res):
        for r in rows:
            r |= {"n": 0, "decision": "not ranked: protocols differ"}
        why = f"{display(metric)} protocols differ between runs (see the protocol notes)"
        sentence = f"no verdict: {why}; select runs of one protocol with --where."
        return Verdict(metric, mode, step, rows, 0, sentence, scheduler=bool(sched))
    for row in rows:
        part = values.filter(pl.col("group") == row["group"])
        est = mean_ci(part["value"].to_list())
        row |= {"n": est.n, "mean": est.mean, "sd": est.sd, "ci95": est.ci}
    sign = 1.0 if mode == "min" else -1.0
    ranked = sorted((r for r in rows if r["n"]), key=lambda r: (sign * r["mean"], -r["n"]))
    for i, r in enumerate(ranked):
        r["rank"] = i + 1
    if ranked:
        _compare(values, grouping, ranked, sign)
    for r in rows:
        r["decision"] = _decision(r, step, ranked)
    sentence = _sentence(rows, ranked, name, step)
    tests = sum(r.get("p") is not None for r in ranked)
    v = Verdict(metric, mode, step, ranked + [r for r in rows if not r["n"]], tests, sentence)
    v.scheduler = bool(sched)
    v.notes = _footnotes(v, name)
    return v


def _by_label(grouping: Grouping, status: Mapping[str, str]) -> dict[str, str]:
    """``status`` keyed by group label (keys may be labels or group ids)."""
    ids = dict(grouping.runs.select("group_id", "group").unique("group_id").iter_rows())
    out = {}
    for key, text in status.items():
        label = key if key in grouping.labels else ids.get(key)
        if label is not None:
            out[label] = str(text)
    return out


def _status_row(res: Results, grouping: Grouping, label: str, scheduler: str | None) -> dict:
    runs = grouping.runs.filter(pl.col("group") == label).join(res.runs.select("run", "status", "status_note"), "run")
    notes = runs.group_by("status_note", maintain_order=True).len()
    notes = notes.sort(pl.col("status_note") != FINISHED, pl.col("len"), "status_note", descending=[False, True, False])
    finished = int((runs["status"] == FINISHED).sum())
    if notes.height == 1:
        status = notes["status_note"][0]
    else:
        status = "; ".join(f"{k} {s}" for s, k in notes.iter_rows())
    return {"group": label, "status": status, "finished": finished, "started": runs.height, "rank": None,
            "scheduler": scheduler}  # fmt: skip


def _compare(values: pl.DataFrame, grouping: Grouping, ranked: list[dict], sign: float) -> None:
    """Paired t tests of each ranked group against the best (on shared pair keys), Holm-adjusted."""
    keys = grouping.pair_keys
    per_key = values.group_by("group", *keys).agg(pl.col("value").mean())
    best = per_key.filter(pl.col("group") == ranked[0]["group"]).drop("group")
    ps = []
    for r in ranked[1:]:
        pairs = per_key.filter(pl.col("group") == r["group"]).join(best, on=keys, suffix="_best", nulls_equal=False)
        est, p = paired_test((sign * (pairs["value"] - pairs["value_best"])).to_list())
        r |= {"pairs": est.n, "diff": None if est.mean is None else sign * est.mean, "diff_ci95": est.ci, "p": p}
        ps.append(p)
    for r, adjusted in zip(ranked[1:], holm(ps)):
        r["p_holm"] = adjusted
        r["separable"] = adjusted is not None and adjusted < ALPHA


def format_p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.2g}"


def _decision(r: dict, step: int, ranked: list[dict]) -> str:
    if r.get("rank") == 1:
        return "best"
    if r.get("rank") is None:
        return f"not ranked: no seed reached step {step}"
    if r.get("separable"):
        return f"worse than best ({format_p(r['p_holm'])})"
    if r.get("p_holm") is None:
        k = r.get("pairs") or 0
        return f"not separable ({k} shared seed{'s' if k != 1 else ''})"
    return f"not separable ({format_p(r['p_holm'])})"


def _names(rows: list[dict]) -> str:
    """Up to three configurations by name, more by rank: ``the 5 ranked 2-4, 6-7``."""
    if len(rows) <= 3:
        return ", ".join(r["group"] for r in rows)
    ranks, spans = [r["rank"] for r in rows], []
    for k in ranks:
        if spans and k == spans[-1][1] + 1:
            spans[-1][1] = k
        else:
            spans.append([k, k])
    return f"the {len(rows)} ranked " + ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def _sentence(rows: list[dict], ranked: list[dict], name: str, step: int) -> str:
    unranked = [r for r in rows if not r["n"]]
    tail = f"; not ranked (no seed reached step {step}): {_names(unranked)}" if unranked else ""
    if len(unranked) > 3:
        tail = f"; not ranked: {len(unranked)} configurations (no seed reached step {step})"
    if not ranked:
        return f"no configuration has {name}: nothing to rank{tail}."
    best = ranked[0]
    text = f"best: {best['group']}"
    if len(ranked) == 1:
        return f"{text} (the only configuration with {name}){tail}."
    separable = [r for r in ranked[1:] if r.get("separable")]
    close = [r for r in ranked[1:] if not r.get("separable")]
    if separable:
        text += f"; separable from {_names(separable)}"
    if close:
        ns = sorted({min(r.get("pairs") or 0, best["n"]) for r in close})
        at = f"n={ns[0]}" if len(ns) == 1 else f"n={ns[0]}-{ns[-1]}"
        names = _names(close)
        them = "it" if len(close) == 1 else "them"
        seeds = "seed" if ns[-1] == 1 else "seeds"
        text += f"; not separable from {names} at {at} {seeds}; add seeds to the best and to {them} to decide"
    elif best["n"] < 2:
        text += f"; it rests on {best['n']} seed: add seeds to confirm"
    return text + tail + "."


def _footnotes(v: Verdict, name: str) -> list[str]:
    better = "lower" if v.mode == "min" else "higher"
    notes = [
        f"{name}: step {v.step} is the last step every finished seed reached; mean ± 95% t interval over the "
        f"seeds that reached it ({better} is better); runs that ended earlier are left out, never carried forward.",
    ]
    if v.comparisons:
        notes.append(
            f"vs best: two-sided paired t test of each configuration minus the best on the seeds both have, "
            f"p values Holm-corrected over {v.comparisons} comparison{'s' if v.comparisons > 1 else ''} "
            f"(family-wise error {ALPHA:.0%}); not separable: corrected p >= {ALPHA} or fewer than 2 shared seeds."
        )
    return notes


def read_scheduler_status(paths: Sequence[str | os.PathLike]) -> dict[str, str]:
    """``{group_id or label: status}`` from each experiment's ``race.json`` (``race/race.json``, where a race
    study keeps it, or ``race.json``: ``{"groups": {key: text or {"status": text, "group_id": id, ...}}}``,
    or the mapping itself), for the verdict's scheduler column."""
    out: dict[str, str] = {}
    for d in dict.fromkeys(Path(p) for p in paths):
        path = next((p for p in (d / "race" / RACE_FILE, d / RACE_FILE) if p.is_file()), None)
        if path is None:
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        groups = data.get("groups", data) if isinstance(data, dict) else {}
        for key, value in groups.items() if isinstance(groups, dict) else []:
            text = value.get("status") if isinstance(value, dict) else value
            if isinstance(text, str):
                out[str(key)] = text
                if isinstance(value, dict) and value.get("group_id"):  # HyperOpt groups are named h00, h01, ...
                    out[str(value["group_id"])] = text
    return out
