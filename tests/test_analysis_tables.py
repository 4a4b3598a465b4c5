"""`raydrift analyze` on a hand-built experiment whose every table cell is computed by hand here.

Five runs in two config groups (kernel laplace: seeds 0, 1; gaussian: seeds 0, 1, 2). Run a1 is staged with
an overlapping resume: stage 0 logged steps 100-300 (and an eval at 300), stage 1 resumed from the step-200
checkpoint and re-logged step 300 with another loss, so stage 0's step-300 loss (4.1) and FID (50) must be
gone. Run b0's stage 0 logged no FID/IS (so its FID stays missing there and the table marks it). Run b2 ends
at step 300 (matched step 400 leaves it out, never carries it). t quantiles are typed in: t(0.975, 1) and t(0.975, 2).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from fixtures.analysis_helpers import parse_tables, run_cli, table, write_run

from analysis.load import load
from analysis.merge import merge_stages
from raydrift.cli.analyze import analyze

T975 = {2: 12.706204736174707, 3: 4.302652729749464}  # t_{0.975, n-1} for n values
PROV = {"eval/fid_net": "lenet:digits:e30:1a2b3c4d", "eval/fid_samples": 1000, "eval/fid_ref": "digits:train"}
PROV["eval/fid_ref_n"] = 1797


def rec(step, stage=0, loss=None, fid=None, is_=None):
    r = {"time": 0.0, "step": step, "images_seen": step * 640, "stage": stage}
    if loss is not None:
        r["train/loss"] = loss
    if fid is not None:
        r |= {"eval/fid": fid, "eval/is": is_, "eval/grid": f"samples/step_{step:09d}.png"} | PROV
    return r


RUNS = {  # name: (kernel, group_id, seed, records)
    "trial_a0": ("laplace", "aaaa1111", 0, [
        rec(0, fid=300, is_=1.0), rec(100, loss=5.0), rec(200, loss=4.0, fid=100, is_=2.0),
        rec(300, loss=4.5), rec(400, loss=4.2, fid=80, is_=2.5)]),
    "trial_a1": ("laplace", "aaaa1111", 1, [
        rec(0, fid=310, is_=1.1), rec(100, loss=5.2), rec(200, loss=4.4, fid=120, is_=1.8),
        rec(300, loss=4.1, fid=50, is_=3.0),  # stage 0 after the checkpoint: replaced by stage 1
        rec(300, 1, loss=4.6), rec(400, 1, loss=4.3, fid=90, is_=2.3)]),
    "trial_b0": ("gaussian", "bbbb2222", 0, [
        rec(100, loss=5.1), rec(200, loss=4.0),  # stage 0: FID/IS not logged
        rec(300, 1, loss=3.9), rec(400, 1, loss=4.0, fid=60, is_=2.8)]),
    "trial_b1": ("gaussian", "bbbb2222", 1, [
        rec(0, fid=305, is_=1.0), rec(100, loss=5.0), rec(200, loss=3.8, fid=70, is_=2.6),
        rec(300, loss=3.9), rec(400, loss=3.7, fid=55, is_=2.9)]),
    "trial_b2": ("gaussian", "bbbb2222", 2, [
        rec(0, fid=300, is_=1.2), rec(100, loss=5.3), rec(200, loss=4.1, fid=65, is_=2.5), rec(300, loss=4.2)]),
}  # fmt: skip


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    root = tmp_path / "kernels"
    for name, (kernel, gid, seed, records) in RUNS.items():
        write_run(root, name, kernel, gid, seed, records)
    (root / "tuner.pkl").write_bytes(b"")  # Tune's own files beside the trials are ignored
    (root / "experiment_state-2026.json").write_text("{}")
    return root


# Cells are typed in, worked by hand from the records above. Two seeds: the mean and ⚠ (no interval stated;
# the mean to the interval's place, at least 3 significant digits, zeros dropped): laplace FID @400 (80, 90):
# mean 85, ci = 12.706 * 7.07 / √2 = 63.5 -> tens, widened to 3 significant digits -> "85.0" -> "85 ⚠".
# Three seeds: mean ± ci, the ci to 2 significant digits: gaussian loss @300 (3.9, 3.9, 4.2): mean 4.0,
# sd 0.1732, ci = 4.303 * 0.1732 / √3 = 0.430 -> "4.00 ± 0.43". One value: 4 significant digits ("65").


def test_summary_table_every_cell(experiment):
    tables = parse_tables(run_cli(str(experiment)))
    t = table(tables, "Summary per group")
    # grouped by the swept key, study order; gaussian's runs end at 400 (b0, b1) and 300 (b2): one row per end
    assert list(t) == [
        "kernel=laplace",
        "kernel=gaussian (ends at step 400)",
        "kernel=gaussian (ends at step 300) (1 seed, preliminary)",
    ]
    lap, gau, b2 = t.values()
    assert (lap["n"], gau["n"], b2["n"]) == ("2", "2", "1")
    assert (lap["final step"], gau["final step"], b2["final step"]) == ("400", "400", "300")  # never averaged
    # laplace: a0 and a1 (merged: 5.2, 4.4, 4.6, 4.3; FID 310, 120, 90; IS 1.1, 1.8, 2.3)
    assert lap["min train/loss"] == "4.15 ⚠"  # (4.0, 4.3)
    assert lap["last train/loss"] == "4.25 ⚠"  # (4.2, 4.3)
    assert lap["min FID"] == lap["last FID"] == "85 ⚠"  # (80, 90)
    assert lap["max IS"] == lap["last IS"] == "2.4 ⚠"  # (2.5, 2.3): ci 1.27, mean to 2 decimals "2.40"
    # gaussian ending at 400: b0 (merged loss 5.1, 4.0, 3.9, 4.0; FID only in stage 1) and b1
    assert gau["min train/loss"] == "3.8 ⚠"  # (3.9, 3.7)
    assert gau["last train/loss"] == "3.85 ⚠"  # (4.0, 3.7)
    assert gau["min FID"] == gau["last FID"] == "57.5 ⚠ †"  # (60, 55)
    assert gau["max IS"] == gau["last IS"] == "2.85 ⚠ †"  # (2.8, 2.9)
    # b2 alone (ends at 300): its own values, 4 significant digits
    assert (b2["min train/loss"], b2["last train/loss"], b2["min FID"], b2["max IS"]) == ("4.1", "4.2", "65", "2.5")


def test_missing_stage_note_and_no_zero(experiment):
    out = run_cli(str(experiment))
    assert "† run trial_b0, stage 0 (steps 100-200): no eval/fid, eval/is logged" in out
    res = load(experiment)
    b0 = res.tidy.filter((pl.col("run") == "trial_b0") & (pl.col("metric") == "eval/fid"))
    assert b0.select("step", "value", "stage").rows() == [(400, 60.0, 1)]  # missing, never zero
    assert res.runs.filter(pl.col("run") == "trial_b0")["stages"].to_list() == [[0, 1]]


def test_matched_step_tables_every_cell(experiment):
    tables = parse_tables(run_cli(str(experiment), "--at-step", "400", "--at-step", "300"))
    t = table(tables, "Matched step 400")
    lap, gau = t["kernel=laplace"], t["kernel=gaussian"]
    assert lap["train/loss @400"] == "4.25 ⚠"  # (4.2, 4.3)
    assert lap["FID @400"] == "85 ⚠"  # (80, 90)
    assert lap["IS @400"] == "2.4 ⚠"  # (2.5, 2.3)
    # b2 ended at step 300: not in the step-400 cells (n=2 of 3, ‡), its step-300 values never carried
    assert gau["n"] == "3"
    assert gau["train/loss @400"] == "3.85 ⚠ (n=2) ‡"  # (4.0, 3.7), not (4.0, 3.7, 4.2)
    assert gau["FID @400"] == "57.5 ⚠ (n=2) † ‡"  # (60, 55), not b2's step-200 65
    assert gau["IS @400"] == "2.85 ⚠ (n=2) † ‡"  # (2.8, 2.9)
    t = table(tables, "Matched step 300")
    lap, gau = t["kernel=laplace"], t["kernel=gaussian"]
    assert lap["train/loss @300"] == "4.55 ⚠"  # (4.5, 4.6): a1's stage-1 4.6, not stage 0's 4.1
    assert lap["FID @300"] == "110 ⚠"  # (100, 120): a1's eval at 200; stage 0's FID at 300 is gone
    assert lap["IS @300"] == "1.9 ⚠"  # (2.0, 1.8)
    assert gau["train/loss @300"] == "4.00 ± 0.43"  # (3.9, 3.9, 4.2): every run reached step 300
    assert gau["FID @300"] == "67.5 ⚠ (n=2)"  # (70, 65): b0 has no FID before 400
    assert gau["IS @300"] == "2.55 ⚠ (n=2)"  # (2.6, 2.5)


def test_matched_step_notes(experiment):
    out = run_cli(str(experiment), "--at-step", "400", "--at-step", "300")
    assert (
        "‡ Left out of the step-400 cells (n counts the runs that reached it; nothing is carried forward): "
        "1 run ended at step 300 of 400 (no record why): `kernel=gaussian` seed 2." in out
    )
    assert (
        "FID @300, IS @300: `kernel=laplace` seeds 0, 1; `kernel=gaussian` seeds 1, 2 logged nothing at step 300 "
        "(they went on past it); their last value before it (step 200) is used." in out
    )


def test_paired_differences_on_shared_seeds(experiment):
    out = run_cli(str(experiment), "--at-step", "400", "--baseline", "kernel=laplace")
    tables = parse_tables(out)
    # shared seeds 0 and 1 (b2 has no laplace partner): gaussian - laplace per seed
    row = table(tables, "Paired difference vs `kernel=laplace` at step 400")["kernel=gaussian"]
    assert row["n"] == "2"
    assert row["train/loss @400"] == "-0.4 ⚠"  # (4.0 - 4.2, 3.7 - 4.3)
    assert row["FID @400"] == "-27.5 ⚠ †"  # (60 - 80, 55 - 90)
    assert row["IS @400"] == "0.45 ⚠ †"  # (2.8 - 2.5, 2.9 - 2.3)
    assert "Paired on: seed;" in out
    assert "trial_b2" not in out.split("at step 400 (group")[1]  # unpaired run: no notes about it
    assert not [title for title in tables if title.startswith("Paired difference") and "at step" not in title]
    # the baseline can also be named by label or group_id
    assert parse_tables(run_cli(str(experiment), "--baseline", "aaaa1111")) == parse_tables(
        run_cli(str(experiment), "--baseline", "kernel=laplace")
    )


def test_files_hold_the_numbers(experiment, tmp_path):
    out = tmp_path / "out"
    run_cli(str(experiment), "--at-step", "300", "--baseline", "kernel=laplace", "--out", str(out), "--no-plots")
    cells = pl.read_csv(out / "matched_step_300.csv")
    row = cells.filter((pl.col("group") == "kernel=gaussian") & (pl.col("column") == "train/loss @300")).row(
        0, named=True
    )
    sd = math.sqrt(((3.9 - 4.0) ** 2 * 2 + (4.2 - 4.0) ** 2) / 2)
    assert row["n"] == 3 and row["seeds"] == 3 and row["mean"] == pytest.approx(4.0)
    assert row["sd"] == pytest.approx(sd) and row["ci95"] == pytest.approx(T975[3] * sd / math.sqrt(3))
    # the markdown shows n = 2 as "57.5 ⚠"; the file keeps the interval, unrounded
    cells = pl.read_csv(out / "summary.csv")
    row = cells.filter((pl.col("group") == "kernel=gaussian (ends at step 400)") & (pl.col("column") == "min FID"))
    row = row.row(0, named=True)
    sd = math.sqrt(((60 - 57.5) ** 2 + (55 - 57.5) ** 2) / 1)
    assert row["n"] == 2 and row["mean"] == pytest.approx(57.5)
    assert row["ci95"] == pytest.approx(T975[2] * sd / math.sqrt(2))
    assert row["missing_stages"] and not row["preliminary"]
    ended = pl.read_csv(out / "matched_step_400.csv").filter(
        (pl.col("group") == "kernel=gaussian") & (pl.col("column") == "FID @400")
    )
    assert ended.select("n", "ended_before").row(0) == (2, 1)
    assert pl.read_parquet(out / "matched_step_400.parquet").equals(
        pl.read_csv(out / "matched_step_400.csv", schema=pl.read_parquet(out / "matched_step_400.parquet").schema)
    )
    verdict = pl.read_csv(out / "verdict.csv")
    assert verdict["group"].to_list() == ["kernel=gaussian", "kernel=laplace"]
    assert verdict["mean"].to_list() == pytest.approx([57.5, 85.0]) and verdict["step"].to_list() == [400, 400]
    assert (out / "report.md").read_text().startswith("# raydrift analyze")
    tidy = pl.read_parquet(out / "tidy.parquet")
    assert {"experiment", "trial_id", "group_id", "seed", "step", "images_seen", "metric", "value"} <= set(tidy.columns)
    assert {"fid_net", "fid_samples", "fid_ref", "fid_ref_n", "protocol", "drift.kernel"} <= set(tidy.columns)


def test_one_seed_is_preliminary(experiment):
    out = run_cli(str(experiment), "--where", "seed=0|2", "--by", "kernel")  # seed is a config key here too
    t = table(parse_tables(out), "Summary per group")
    assert list(t)[0] == "kernel=laplace (1 seed, preliminary)"
    assert t["kernel=laplace (1 seed, preliminary)"]["min FID"] == "80"
    t = table(parse_tables(out), "Matched step 400")  # b2 (seed 2) ended at 300: gaussian rests on b0
    assert list(t) == ["kernel=laplace (1 seed, preliminary)", "kernel=gaussian"]
    assert t["kernel=gaussian"]["FID @400"] == "60 (n=1) † ‡"


def test_where_label_and_dry_run(experiment):
    out = run_cli(str(experiment), "--where", "kernel=gaussian", "--label", "{kernel} kernel")
    assert list(table(parse_tables(out), "Matched step 400")) == ["gaussian kernel"]
    listing = run_cli(str(experiment), "--dry-run")
    assert "trial_b2" in listing and "kernel=gaussian" in listing and "Summary" not in listing
    result = CliRunner().invoke(analyze, [str(experiment), "--by", "nonexistent"])
    assert result.exit_code != 0 and "no config key 'nonexistent'" in result.output


def test_merge_rule_later_stage_wins_from_its_first_step():
    """Stage 0's records at or after stage 1's first step go, even at steps stage 1 did not re-log; records
    of one stage at one step combine key by key (the later record winning)."""
    records = [  # (stage, step, metric, value)
        (0, 10, "train/loss", 1.0), (0, 20, "train/loss", 2.0), (0, 30, "train/loss", 3.0),
        (0, 40, "eval/fid", 9.0), (1, 25, "train/loss", 2.5), (1, 45, "train/loss", 4.5),
        (1, 45, "eval/fid", 8.0), (1, 45, "eval/fid", 7.0),
    ]  # fmt: skip
    long = pl.DataFrame(
        [("r", s, t, i, None, m, v) for i, (s, t, m, v) in enumerate(records)],
        schema={"run": pl.String, "stage": pl.Int64, "step": pl.Int64, "seq": pl.Int64, "images_seen": pl.Int64}
        | {"metric": pl.String, "value": pl.Float64},
        orient="row",
    )
    steps, merged = merge_stages(long.select("run", "stage", "step", "seq", "images_seen"), long)
    assert steps["step"].to_list() == [10, 20, 25, 45]
    assert merged.sort("step", "metric").select("stage", "step", "metric", "value").rows() == [
        (0, 10, "train/loss", 1.0),
        (0, 20, "train/loss", 2.0),
        (1, 25, "train/loss", 2.5),
        (1, 45, "eval/fid", 7.0),
        (1, 45, "train/loss", 4.5),
    ]


def test_tune_trial_without_our_files(tmp_path):
    """A trial synced from S3 with only Tune's result.json and params.json."""
    trial = tmp_path / "study" / "trial_abc12_00001"
    trial.mkdir(parents=True)
    params = {"group_id": "g1", "group_label": "drift.kernel=gaussian", "seed": 3, "drift.kernel": "gaussian"}
    (trial / "params.json").write_text(json.dumps(params))
    lines = [
        {"step": 100, "stage": 0, "train/loss": 5.0, "training_iteration": 1, "trial_id": "abc12_00001"},
        {"step": 200, "stage": 0, "train/loss": 4.0, "eval/fid": 70.0, "training_iteration": 2},
        {"step": 200, "stage": 1, "train/loss": 4.5, "training_iteration": 1, "config": params},
    ]
    (trial / "result.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
    res = load(tmp_path / "study")
    run = res.runs.row(0, named=True)
    assert (run["trial_id"], run["group_id"], run["seed"], run["drift.kernel"]) == ("abc12_00001", "g1", 3, "gaussian")
    assert res.swept == ["drift.kernel"]
    loss = res.tidy.filter(pl.col("metric") == "train/loss").select("step", "value").rows()
    assert loss == [(100, 5.0), (200, 4.5)]
    assert res.tidy.filter(pl.col("metric") == "eval/fid").height == 0  # stage 1 re-logged step 200


def test_stage_from_meta_and_logical_runs(tmp_path):
    """Two directories declaring one logical_run are its stages (stage from meta.json when records lack it)."""
    for stage, rows in enumerate([[(10, 1.0), (20, 0.5)], [(15, 0.9), (30, 0.8)]]):
        d = tmp_path / "exp" / f"part{stage}"
        d.mkdir(parents=True)
        (d / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "train/loss": v}) + "\n" for s, v in rows))
        (d / "meta.json").write_text(json.dumps({"logical_run": "r", "stage": stage, "seed": 0}))
    res = load(tmp_path / "exp")
    assert res.runs["run"].to_list() == ["r"] and res.runs["final_step"].to_list() == [30]
    assert res.tidy.select("stage", "step", "value").rows() == [(0, 10, 1.0), (1, 15, 0.9), (1, 30, 0.8)]


def test_baseline_on_one_axis_pairs_each_group_with_its_counterpart(tmp_path):
    """kernel x normalisation: `--baseline kernel=laplace` pairs gaussian+xy with laplace+xy, gaussian+y with
    laplace+y (the last FID of each run is typed in here)."""
    fids = {("laplace", "xy"): (80, 90), ("laplace", "y"): (70, 75), ("gaussian", "xy"): (60, 66)}
    fids[("gaussian", "y")] = (72, 71)
    root = tmp_path / "kxn"
    for (kernel, norm), per_seed in fids.items():
        for seed, fid in enumerate(per_seed):
            d = write_run(
                root,
                f"{kernel}-{norm}-s{seed}",
                kernel,
                f"{kernel}{norm}",
                seed,
                [rec(400, loss=1.0, fid=fid, is_=2.0)],
            )
            config = json.loads((d / "config.json").read_text())
            config["drift"]["normalization"] = norm
            (d / "config.json").write_text(json.dumps(config))
            meta = json.loads((d / "meta.json").read_text())
            meta["overrides"]["drift.normalization"] = norm
            (d / "meta.json").write_text(json.dumps(meta))
    out = run_cli(str(root), "--baseline", "kernel=laplace")
    t = table(parse_tables(out), "Paired difference vs `kernel=laplace` at step 400")
    assert list(t) == ["kernel=gaussian, normalization=xy", "kernel=gaussian, normalization=y"]
    assert t["kernel=gaussian, normalization=xy"]["FID @400"] == "-22 ⚠"  # (60 - 80, 66 - 90)
    assert t["kernel=gaussian, normalization=y"]["FID @400"] == "-1 ⚠"  # (72 - 70, 71 - 75)
    assert "`kernel=gaussian, normalization=y` - `kernel=laplace, normalization=y`" in out
    # naming one group still makes it everyone's baseline
    t = table(parse_tables(run_cli(str(root), "--baseline", "kernel=laplace,normalization=xy")), "Paired difference")
    assert t["kernel=gaussian, normalization=y"]["FID @400"] == "-13.5 ⚠"  # (72 - 80, 71 - 90)
    assert t["kernel=laplace, normalization=y"]["FID @400"] == "-12.5 ⚠"  # (70 - 80, 75 - 90)
    result = CliRunner().invoke(analyze, [str(root), "--baseline", "kernel=cosine"])
    assert result.exit_code != 0 and "matches no group" in result.output


def test_report_shows_diversity_and_the_yardsticks_it_is_judged_against(tmp_path):
    """Learning is claimed against a class-mean generator and the real data's diversity, so both are shown."""
    for seed, (fid, div, mean_fid) in enumerate([(6.0, 3.7, 38.7), (5.0, 3.9, 38.8)]):
        evals = {"eval/fid": fid, "eval/diversity": div, "eval/fid_classmean": mean_fid, "eval/fid_real": 0.72}
        records = [{"step": 800, "images_seen": 256000, "eval/diversity_real": 4.53} | evals]
        write_run(tmp_path / "study", f"trial_{seed}", "gaussian", "gaus", seed, records)
    out = run_cli(str(tmp_path / "study"))
    assert (
        "Yardsticks: class-mean generator FID 38.7-38.8, held-out real FID 0.72, real within-class diversity 4.53."
        in out
    )
    matched = table(parse_tables(out), "Matched step 800")
    assert matched["kernel=gaussian"]["diversity @800"] == "3.8 ⚠"  # (3.7, 3.9), n = 2
