"""The verdict that opens `raydrift analyze`, and the numbers' rounding, on a study whose answer is known.

A study as `raydrift tune` leaves it (trial directories, study.json, summary.json), 400 steps per trial:

- laplace: seeds 0, 1, 2 finished, FID @400 10, 11, 12 (the best);
- l2: 10.5, 13, 11: paired differences to laplace (0.5, 2, -1): mean 0.5, sd 1.5, t = 0.577 on 2 df;
- gaussian: 20, 21.5, 22: differences (10, 10.5, 10): mean 10.17, sd 0.289, t = 61.0 on 2 df;
- energy: seed 0 finished at FID 30, seed 1 stopped by ASHA at step 200 (FID 400 there);
- cauchy: both seeds stopped by ASHA at step 200; tdist: its one seed failed at step 100.

On 2 degrees of freedom the two-sided t test has a closed form, p = 1 - t / sqrt(t^2 + 2): l2 p = 0.6220,
gaussian p = 0.000269. Holm over the two tests: 2 x 0.000269 = 0.00054 (< 0.05: separable) and
max(0.00054, 1 x 0.6220) = 0.622 (not separable). energy shares one seed with laplace: no test.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from fixtures.analysis_helpers import parse_tables, run_cli, table, write_run

from analysis.grouping import make_grouping
from analysis.load import load
from analysis.render import format_estimate, format_value
from analysis.report import verdict_markdown
from analysis.stats import holm, paired_test
from analysis.verdict import verdict

STUDY = {"metric": "eval/fid", "mode": "min", "scheduler": {"grace_steps": 100, "reduction_factor": 2}}
FINAL = {  # kernel: [(seed, status, last step, FID at the last step)]
    "laplace": [(0, "completed", 400, 10.0), (1, "completed", 400, 11.0), (2, "completed", 400, 12.0)],
    "l2": [(0, "completed", 400, 10.5), (1, "completed", 400, 13.0), (2, "completed", 400, 11.0)],
    "gaussian": [(0, "completed", 400, 20.0), (1, "completed", 400, 21.5), (2, "completed", 400, 22.0)],
    "energy": [(0, "completed", 400, 30.0), (1, "early-stopped", 200, 400.0)],
    "cauchy": [(0, "early-stopped", 200, 350.0), (1, "early-stopped", 200, 360.0)],
    "tdist": [(0, "failed", 100, 500.0)],
}


def p_two_df(t: float) -> float:
    return 1 - abs(t) / math.sqrt(t * t + 2)


def write_study(root: Path, summary: bool = True) -> Path:
    trials = []
    for kernel, seeds in FINAL.items():
        for seed, status, last, fid in seeds:
            records = [{"step": 0, "train/loss": 9.0, "eval/fid": 900.0}]
            records += [{"step": s, "train/loss": 5.0, "eval/fid": fid + (last - s)} for s in range(100, last + 1, 100)]
            if status == "failed":
                records.append({"step": last, "failure": "FloatingPointError: loss is nan at step 100"})
            name = f"trial_{kernel}_{seed}"
            write_run(root, name, kernel, kernel[:4], seed, records)
            reason = {"failed": "FloatingPointError: loss is nan", "early-stopped": f"stopped at step {last}"}
            trials.append({"trial_id": name, "status": status, "reason": reason.get(status, ""), "last_step": last})
    (root / "study.json").write_text(json.dumps(STUDY))
    if summary:
        (root / "summary.json").write_text(json.dumps({"trials": trials}))
    return root


@pytest.fixture
def study(tmp_path) -> Path:
    return write_study(tmp_path / "kernels-digits")


def test_verdict_decisions_on_a_known_answer(study):
    res = load(study)
    v = verdict(res, make_grouping(res))
    assert (v.metric, v.mode, v.step, v.comparisons) == ("eval/fid", "min", 400, 2)
    rows = {r["group"]: r for r in v.rows}
    assert [r["group"] for r in v.rows] == [f"kernel={k}" for k in FINAL]  # ranked, then the unranked
    assert [rows[f"kernel={k}"]["rank"] for k in FINAL] == [1, 2, 3, 4, None, None]
    l2, gau, energy = rows["kernel=l2"], rows["kernel=gaussian"], rows["kernel=energy"]
    assert l2["p"] == pytest.approx(p_two_df(0.5 / (1.5 / math.sqrt(3))), rel=1e-6)  # 0.6220
    t_gau = (61 / 6) / (math.sqrt(1 / 12) / math.sqrt(3))  # (10, 10.5, 10): mean 10.1667, sd sqrt(1/12)
    assert gau["p"] == pytest.approx(p_two_df(t_gau), rel=1e-6)  # 0.000269
    assert gau["p_holm"] == pytest.approx(2 * gau["p"]) and gau["separable"]
    assert l2["p_holm"] == pytest.approx(l2["p"]) and not l2["separable"]
    assert energy["n"] == 1 and energy["mean"] == 30.0 and energy["pairs"] == 1 and energy["p"] is None
    assert rows["kernel=cauchy"]["n"] == 0 and rows["kernel=tdist"]["n"] == 0
    assert v.sentence == (
        "best: kernel=laplace; separable from kernel=gaussian; not separable from kernel=l2, kernel=energy at "
        "n=1-3 seeds; add seeds to the best and to them to decide; not ranked (no seed "
        "reached step 400): kernel=cauchy, kernel=tdist."
    )


def test_verdict_table_as_printed(study):
    out = run_cli(study)
    assert out.index("## Verdict: FID @400 (lower is better)") < out.index("## Matched step 400")
    t = table(parse_tables(out), "Verdict")
    assert list(t) == ["1", "2", "3", "4", "—"]  # rows keyed by rank; the two unranked share "—"
    assert t["1"] == {
        "configuration": "kernel=laplace",
        "status": "finished",
        "seeds finished": "3/3",
        "FID @400": "11.0 ± 2.5",  # (10, 11, 12): sd 1, ci 4.303 / √3 = 2.48
        "vs best": "best",
    }
    assert t["2"]["FID @400"] == "11.5 ± 3.3"  # (10.5, 13, 11): sd 1.323, ci 3.29
    assert t["2"]["vs best"] == "not separable (p=0.62)"
    assert t["3"]["FID @400"] == "21.2 ± 2.6"  # (20, 21.5, 22): sd 1.041, ci 2.59
    assert t["3"]["vs best"] == "worse than best (p<0.001)"
    assert t["4"] == {
        "configuration": "kernel=energy",
        "status": "1 finished; 1 stopped at step 200 by ASHA",
        "seeds finished": "1/2",
        "FID @400": "30 (n=1)",  # seed 1's FID 400 at step 200 is not carried to step 400
        "vs best": "not separable (1 shared seed)",
    }
    lines = out.splitlines()
    cauchy = "| — | kernel=cauchy | stopped at step 200 by ASHA | 0/2 | — | not ranked: no seed reached step 400 |"
    assert cauchy in lines
    assert any(line.startswith("| — | kernel=tdist | failed at step 100: FloatingPointError") for line in lines)
    assert "**Best: kernel=laplace; separable from kernel=gaussian; not separable from kernel=l2" in out
    assert "Holm-corrected over 2 comparisons" in out


def test_matched_step_leaves_out_stopped_seed_and_groups_notes(study):
    out = run_cli(study)
    row = table(parse_tables(out), "Matched step 400")["kernel=energy"]
    assert row["n"] == "2" and row["FID @400"] == "30 (n=1) ‡"  # n=1: seed 1 stopped at step 200
    assert (
        "‡ Left out of the step-400 cells (n counts the runs that reached it; nothing is carried forward): "
        "4 runs that ended before step 400." in out
    )
    assert "‡ 3 runs stopped at step 200 by ASHA: `kernel=cauchy` seeds 0, 1; `kernel=energy` seed 1." in out
    assert "‡ 1 run failed at step 100: FloatingPointError: loss is nan: `kernel=tdist` seed 0." in out


def test_status_without_summary(tmp_path):
    """While a study runs (no summary.json yet), a short run's reason is not known; a failure record is."""
    res = load(write_study(tmp_path / "running", summary=False))
    notes = dict(res.runs.select("run", "status_note").iter_rows())
    assert notes["trial_energy_1"] == "ended at step 200 of 400 (no record why)"
    assert notes["trial_tdist_0"] == "failed at step 100: FloatingPointError: loss is nan at step 100"
    assert notes["trial_laplace_0"] == "finished"


def test_scheduler_status_column(study):
    res = load(study)
    v = verdict(res, make_grouping(res), scheduler_status={"gaus": "out at rung 1", "kernel=laplace": "picked"})
    rows = {r["group"]: r for r in v.rows}
    assert rows["kernel=gaussian"]["scheduler"] == "out at rung 1" and rows["kernel=laplace"]["scheduler"] == "picked"
    race = {"groups": {"kernel=energy": {"status": "continued, escalated to 3 seeds", "group_id": "ener"}}}
    (study / "race").mkdir()
    (study / "race" / "race.json").write_text(json.dumps(race))  # where the race driver writes it
    text = verdict_markdown([study])
    assert "| scheduler |" in text.splitlines()[2]
    assert "| not separable (1 shared seed) | continued, escalated to 3 seeds |" in text


def test_rounding_follows_the_interval():
    assert format_estimate(38.9189, 36.9263, 3) == "39 ± 37"  # the 4-decimal cell, read plainly
    assert format_estimate(38.9189, 3.7012, 3) == "38.9 ± 3.7"
    assert format_estimate(221.852, 2325.1918, 3) == "200 ± 2300"
    assert format_estimate(1.23456, 0.00123, 4) == "1.2346 ± 0.0012"
    assert format_estimate(-0.004, 0.5, 5) == "0.00 ± 0.50"  # never "-0.00"
    assert format_estimate(221.852, 2325.1918, 2) == "222 ⚠"  # n = 2: no interval, 3 significant digits
    assert format_estimate(38.86, 1.27, 2) == "38.9 ⚠"
    assert format_value(404.85) == "404.9" and format_value(23400.0) == "23400" and format_value(0.012345) == "0.01235"
    assert format_value(65.0) == "65" and format_value(54.8681, 4) == "54.8681"
    assert format_estimate(7.0, 0.0, 3) == "7"  # equal values: the value alone


def test_holm_and_paired_test_by_hand():
    assert holm([0.01, 0.04, 0.03, None]) == pytest.approx([0.03, 0.06, 0.06, None])  # 3x0.01; 2x0.03; max(., 0.04)
    est, p = paired_test([0.5, 2.0, -1.0])
    assert (est.mean, est.sd) == pytest.approx((0.5, 1.5)) and p == pytest.approx(0.62204, abs=1e-5)
    assert paired_test([3.0])[1] is None and paired_test([2.0, 2.0])[1] == 0.0 and paired_test([0.0, 0.0])[1] == 1.0
