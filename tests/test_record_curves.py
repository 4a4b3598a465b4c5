"""benchmarks/record_curves.py: the grid a study file describes, as `raydrift train --plain` command lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import record_curves  # noqa: E402

from raydrift.orchestration.study_file import load_study  # noqa: E402

STUDY = ROOT / "benchmarks" / "studies" / "curves_8x8.py"


def test_the_recording_grid_is_eight_configurations_by_eight_seeds():
    study = load_study(STUDY)
    points = record_curves.grid(study)
    assert len(points) == 8 and len(study.seeds) == 8 and study.scheduler is None
    names = {record_curves.run_name(p, s) for p in points for s in study.seeds}
    assert len(names) == 64  # one run directory per (configuration, seed)


def test_each_command_is_the_trial_raydrift_tune_would_run(tmp_path):
    study = load_study(STUDY)
    params = {"drift.kernel": "gaussian", "drift.normalization": "y", "drift.temperatures": [0.05]}
    cmd = record_curves.command(study, params, 5, tmp_path, threads=1)
    out = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "plain process" in out.stdout and "eval every 100 steps" in out.stdout
    resolved = study.trial_config(params, 5)  # what the study runner gives this trial
    assert f"{resolved.train.steps} steps" in out.stdout
    assert '"seed": 5' in out.stdout and '"kernel": "gaussian"' in out.stdout and '"normalization": "y"' in out.stdout
    assert not record_curves.finished(tmp_path / record_curves.run_name(params, 5), resolved.train.steps)
