"""`raydrift analyze --export-curves`: the CSV the scheduler replay reads, from real run directories."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

from click.testing import CliRunner
from fixtures.analysis_helpers import run_cli, write_run

from raydrift.cli.analyze import analyze

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from scheduler_replay import load_curves  # noqa: E402

PER_STEP = 320  # images per step


def _records(fids: list[float], every: int = 100) -> list[dict]:
    out = []
    for i, fid in enumerate(fids):
        step = (i + 1) * every
        out.append({"step": step, "images_seen": step * PER_STEP, "train/loss": 1.0 / step})
        out.append({"step": step, "images_seen": step * PER_STEP, "eval/fid": fid, "eval/diversity": 3.0})
    return out


CURVES = {  # (kernel, seed) -> FIDs at steps 100, 200, 300; laplace seed 1 failed after its second eval
    ("laplace", 0): [40.0, 20.0, 10.0],
    ("laplace", 1): [42.0, 21.5],
    ("gaussian", 0): [35.0, 18.0, 9.5],
    ("gaussian", 1): [36.0, 17.0, float("nan")],
}


def _study(tmp_path):
    root = tmp_path / "exp"
    for (kernel, seed), fids in CURVES.items():
        write_run(root, f"{kernel}-{seed}", kernel, f"g-{kernel}", seed, _records(fids))
    return root


def test_export_curves_is_what_the_replay_reads(tmp_path):
    root = _study(tmp_path)
    out = tmp_path / "curves.csv"
    run_cli(root, "--export-curves", out)
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["group", "seed", "step", "images_seen", "fid", "kernel"]
    finite = {key: [f for f in fids if math.isfinite(f)] for key, fids in CURVES.items()}
    assert len(rows) == sum(map(len, finite.values()))  # a failed run has fewer rows, never zeros or NaNs
    by_run: dict[tuple[str, int], list[float]] = {}
    for row in rows:
        assert row["group"] == f"kernel={row['kernel']}"
        assert int(row["images_seen"]) == int(row["step"]) * PER_STEP
        by_run.setdefault((row["kernel"], int(row["seed"])), []).append(float(row["fid"]))
    assert by_run == finite
    curves = load_curves(str(out))  # the benchmark's own reader
    assert curves.max_images == 300 * PER_STEP
    assert curves.final("kernel=gaussian", 0) == 9.5
    assert curves.final("kernel=laplace", 1) is None  # stopped at step 200: a failed run
    assert curves.final("kernel=gaussian", 1) is None  # NaN at its last eval: no row there, a failed run
    assert curves.truth() == {"kernel=laplace": 10.0, "kernel=gaussian": 9.5}


def test_export_curves_without_the_metric_says_what_is_there(tmp_path):
    root = _study(tmp_path)
    args = [str(root), "--export-curves", str(tmp_path / "c.csv"), "--rank-by", "eval/nope"]
    result = CliRunner().invoke(analyze, args)
    assert result.exit_code != 0
    assert "eval/nope" in result.output and "eval/fid" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "c.csv").exists()


def test_export_curves_needs_images_seen(tmp_path):
    root = tmp_path / "exp"
    for seed in (0, 1):
        records = [{k: v for k, v in r.items() if k != "images_seen"} for r in _records([30.0, 20.0])]
        write_run(root, f"laplace-{seed}", "laplace", "g", seed, records)
    result = CliRunner().invoke(analyze, [str(root), "--export-curves", str(tmp_path / "c.csv")])
    assert result.exit_code != 0
    assert "images_seen" in result.output and "Traceback" not in result.output
