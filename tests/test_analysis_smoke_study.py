"""`raydrift analyze` on a real experiment: `raydrift tune search_spaces/smoke.py` (kernel x 2 seeds).

The expected cells are computed here straight from the trial directories' metrics.jsonl (stages merged by
the same rule), independently of the analysis package.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from fixtures.analysis_helpers import parse_tables, run_cli, table

T975_2 = 12.706204736174707  # t_{0.975, 1}


def merged_history(trial_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (trial_dir / "metrics.jsonl").read_text().splitlines() if line]
    firsts = {}
    for r in records:
        firsts[r["stage"]] = min(firsts.get(r["stage"], r["step"]), r["step"])
    return [r for r in records if all(r["step"] < f for s, f in firsts.items() if s > r["stage"])]


def trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def rounded(x: float, decimals: int) -> str:
    text = f"{round(x, decimals):.{max(decimals, 0)}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def expected(values: list[float]) -> str:
    """The documented rule for one or two seeds: one value (or equal values) to 4 significant digits; two
    values: the mean to the interval's place, at least 3 significant digits, and ⚠ for the interval."""
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    if sd == 0:
        return trim(rounded(mean, 3 - math.floor(math.log10(abs(mean))) if mean else 0))
    ci = T975_2 * sd / math.sqrt(len(values))
    d = max(1 - math.floor(math.log10(ci)), 2 - math.floor(math.log10(abs(mean))) if mean else -99)
    return trim(rounded(mean, d)) + " ⚠"


@pytest.mark.slow
@pytest.mark.ray
def test_analyze_smoke_study(smoke_experiment, tmp_path):
    experiment, _ = smoke_experiment
    trials = sorted(p.parent for p in experiment.glob("*/meta.json"))
    assert len(trials) == 4

    out = run_cli(experiment, "--at-step", "20", "--baseline", "kernel=laplace", "--out", tmp_path / "out")
    tables = parse_tables(out)
    summary = table(tables, "Summary per group")
    by_row: dict[tuple[str, int], list[list[dict]]] = {}
    for trial in trials:
        meta = json.loads((trial / "meta.json").read_text())
        history = merged_history(trial)
        by_row.setdefault((meta["group_label"], history[-1]["step"]), []).append(history)
    ends = {}
    for label, end in by_row:
        ends.setdefault(label, []).append(end)
    expected_rows = []
    for (label, end), runs in by_row.items():  # a group whose seeds end at different steps: a row per end
        name = label if len(ends[label]) == 1 else f"{label} (ends at step {end})"
        name += " (1 seed, preliminary)" if len(runs) == 1 else ""
        expected_rows.append(name)
        row = summary[name]
        assert row["n"] == str(len(runs)) and row["final step"] == str(end)
        fids = [[r["eval/fid"] for r in h if r.get("eval/fid") is not None] for h in runs]
        losses = [[r["train/loss"] for r in h if r.get("train/loss") is not None] for h in runs]
        assert row["min FID"] == expected([min(f) for f in fids])
        assert row["last FID"] == expected([f[-1] for f in fids])
        assert row["min train/loss"] == expected([min(v) for v in losses])
    assert sorted(summary) == sorted(expected_rows)
    assert "## Verdict: FID @" in out and out.index("## Verdict") < out.index("## Summary per group")
    assert "FID/IS protocol (all runs): fid_net=lenet:digits:" in out
    reached = {}  # seeds that reached step 20, per group: the pairs of the paired table
    for trial in trials:
        meta = json.loads((trial / "meta.json").read_text())
        if merged_history(trial)[-1]["step"] >= 20:
            reached.setdefault(meta["group_label"], set()).add(meta["seed"])
    shared = reached.get("kernel=gaussian", set()) & reached.get("kernel=laplace", set())
    paired = table(tables, "Paired difference vs `kernel=laplace` at step 20")
    label = "kernel=gaussian" + (" (1 seed, preliminary)" if len(shared) == 1 else "")
    assert paired[label]["n"] == str(len(shared))
    for name in ("curve_eval_fid.png", "curve_train_loss.png", "grids_step_20.png", "summary.csv"):
        assert (tmp_path / "out" / name).stat().st_size > 0
