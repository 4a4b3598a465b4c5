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


def expected(values: list[float]) -> str:
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.4f}" + (f" ± {T975_2 * sd / math.sqrt(len(values)):.4f}" if sd > 0 else "")


@pytest.mark.slow
@pytest.mark.ray
def test_analyze_smoke_study(smoke_experiment, tmp_path):
    experiment, _ = smoke_experiment
    trials = sorted(p.parent for p in experiment.glob("*/meta.json"))
    assert len(trials) == 4

    out = run_cli(experiment, "--at-step", "20", "--baseline", "kernel=laplace", "--out", tmp_path / "out")
    tables = parse_tables(out)
    summary = table(tables, "Summary per group")
    assert list(summary) == ["kernel=laplace", "kernel=gaussian"]
    by_group: dict[str, list[list[dict]]] = {}
    for trial in trials:
        meta = json.loads((trial / "meta.json").read_text())
        by_group.setdefault(meta["group_label"], []).append(merged_history(trial))
    for label, runs in by_group.items():
        row = summary[label]
        assert row["n"] == "2"
        fids = [[r["eval/fid"] for r in h if r.get("eval/fid") is not None] for h in runs]
        losses = [[r["train/loss"] for r in h if r.get("train/loss") is not None] for h in runs]
        assert row["min FID"] == expected([min(f) for f in fids])
        assert row["last FID"] == expected([f[-1] for f in fids])
        assert row["min train/loss"] == expected([min(v) for v in losses])
    assert "FID/IS protocol (all runs): fid_net=lenet:digits:" in out
    assert table(tables, "Paired difference vs `kernel=laplace` at step 20")["kernel=gaussian"]["n"] == "2"
    for name in ("curve_eval_fid.png", "curve_train_loss.png", "grids_step_20.png", "summary.csv"):
        assert (tmp_path / "out" / name).stat().st_size > 0
