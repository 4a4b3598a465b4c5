"""`raydrift train --preset digits` under Ray Train, as a user runs it: learns, does not collapse, <= 5 min."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raydrift.training.rundir import read_history

BUDGET_S = 300


@pytest.mark.slow
@pytest.mark.ray
def test_digits_preset_learns_without_collapse_within_five_minutes(tmp_path):
    exe = Path(sys.executable).with_name("raydrift")
    env = dict(os.environ, RAY_TMPDIR="/tmp")
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(exe), "train", "--preset", "digits", "--set", f"output_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=2 * BUDGET_S,
        env=env,
    )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert elapsed <= BUDGET_S, f"took {elapsed:.0f} s"
    assert "class-mean generator FID" in proc.stdout

    evals = [r for r in read_history(tmp_path / "digits") if r.get("eval/fid") is not None]
    first, last = evals[0], evals[-1]
    assert first["step"] == 0 and last["step"] == 1000
    # Learned: far below the untrained generator and below the class-mean generator (no collapse).
    assert last["eval/fid"] * 5 <= first["eval/fid"], (first["eval/fid"], last["eval/fid"])
    assert last["eval/fid"] * 5 <= last["eval/fid_classmean"], (last["eval/fid"], last["eval/fid_classmean"])
    # Diverse: samples of one class differ about as much as real digits of one class do.
    assert last["eval/diversity"] >= 0.5 * last["eval/diversity_real"]
    assert last["eval/is"] > 8.0  # recognisable: the digits classifier is confident and classes are balanced
    assert last["eval/fid_net"].startswith("lenet:digits:") and last["eval/fid_samples"] == 1000
    assert Path(last["eval/grid"]).stat().st_size > 0
