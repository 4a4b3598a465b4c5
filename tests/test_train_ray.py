"""`raydrift train --preset digits` under Ray Train, as a user runs it: learns and does not collapse.

No wall-clock assertion: how long the preset takes is measured by benchmarks/digits_preset.py. The timeout
only catches a hang; it is about 4x the preset's time on the 2-core CI machine (5-7 minutes there)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from raydrift.training.rundir import read_history

HANG_TIMEOUT_S = 1800


@pytest.mark.slow
@pytest.mark.ray
def test_digits_preset_learns_without_collapse(tmp_path):
    exe = Path(sys.executable).with_name("raydrift")
    env = dict(os.environ, RAY_TMPDIR="/tmp")
    proc = subprocess.run(
        [str(exe), "train", "--preset", "digits", "--set", f"output_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
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
