"""Studies under real Ray Tune + Ray Train on a local CPU cluster: end to end, failures, recovery, W&B."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from raydrift.cli.tune import format_summary
from raydrift.orchestration.study_file import load_study
from raydrift.orchestration.tune import run_study
from raydrift.training.rundir import read_history

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TINY_FIXED = """{
    "train.steps": STEPS, "train.log_every": 5, "eval.every": EVAL, "eval.num_samples": 100,
    "model.dim": 32, "model.depth": 1, "model.heads": 2, "drift.n_pos": 8, "drift.n_neg": 8,
    "drift.classes_per_step": 4, "drift.compile": False, EXTRA
}"""


def tiny_study(space: str, *, steps=10, every=5, extra="", seeds="[0]", trial='{"max_failures": 2}', more=""):
    fixed = TINY_FIXED.replace("STEPS", str(steps)).replace("EVAL", str(every)).replace("EXTRA", extra)
    return (
        f'"""Test study."""\nfrom ray import tune\n\nSPACE = {space}\nFIXED = {fixed}\nSEEDS = {seeds}\n'
        f"SCHEDULER = None\nMAX_CONCURRENT = 2\nTRIAL = {trial}\n{more}"
    )


def trial_dirs(experiment: Path) -> list[Path]:
    return sorted(p for p in experiment.glob("trial_*") if p.is_dir())


def test_smoke_study_end_to_end(smoke_experiment):
    experiment, stdout = smoke_experiment
    rows = json.loads((experiment / "summary.json").read_text())["trials"]
    assert len(rows) == 4 and {r["status"] for r in rows} <= {"completed", "early-stopped"}
    assert sorted((r["group"], r["seed"]) for r in rows) == [
        ("kernel=gaussian", 0),
        ("kernel=gaussian", 1),
        ("kernel=laplace", 0),
        ("kernel=laplace", 1),
    ]
    assert "4 trials:" in stdout and f"raydrift analyze {experiment}" in stdout
    assert "## Verdict: FID @" in stdout and stdout.index("## Verdict") < stdout.index("4 trials:")
    assert "**Best: kernel=" in stdout
    assert json.loads((experiment / "study.json").read_text())["seeds"] == [0, 1]
    for d in trial_dirs(experiment):
        meta = json.loads((d / "meta.json").read_text())
        config = json.loads((d / "config.json").read_text())
        assert meta["group_id"] and meta["seed"] == config["train"]["seed"]
        assert config["drift"]["kernel"] == meta["overrides"]["drift.kernel"]
        hist = read_history(d)
        evals = [h for h in hist if "eval/fid" in h]
        assert evals and all(h["eval/fid_net"].startswith("lenet:digits") for h in evals)
        assert all(h["eval/fid_samples"] == 200 and h["eval/fid_ref"] == "digits:train" for h in evals)
    # The two seeds of a configuration share a group id; the kernels differ.
    groups = {json.loads((d / "meta.json").read_text())["group_id"] for d in trial_dirs(experiment)}
    assert len(groups) == 2


def test_nan_trial_fails_with_its_reason_and_the_study_goes_on(ray_cluster, tmp_path, study_file):
    path = study_file(
        tiny_study(
            '{"optim.lr": tune.grid_search([1e-3, 1e6])}',
            steps=10,
            extra='"optim.grad_clip": 0, "optim.warmup_steps": 0',
        )
    )
    _, rows = run_study(load_study(path), name="nan", storage=str(tmp_path))
    by_lr = {json.loads((Path(r["path"]) / "config.json").read_text())["optim"]["lr"]: r for r in rows}
    assert by_lr[1e-3]["status"] == "completed"
    assert by_lr[1e6]["status"] == "failed" and "loss became nan" in by_lr[1e6]["reason"]
    assert "1 failed" in format_summary(rows)


def test_killed_worker_restarts_from_checkpoint_and_ends_at_the_same_step(ray_cluster, tmp_path, study_file):
    import ray
    from ray.util.state import list_actors

    path = study_file(
        tiny_study(
            '{"drift.kernel": "laplace"}',
            steps=300,
            every=100,
            extra='"train.checkpoint_every": 20, "train.threads": 1',
        )
    )
    killed = {}

    def kill_worker_mid_trial():
        deadline = time.time() + 240
        while time.time() < deadline and not killed:
            dirs = trial_dirs(tmp_path / "kill")
            steps = [h["step"] for d in dirs if (d / "metrics.jsonl").exists() for h in read_history(d)]
            if steps and max(steps) >= 60:
                for actor in list_actors(filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")]):
                    os.kill(actor.pid, signal.SIGKILL)
                    killed[actor.pid] = max(steps)
            time.sleep(0.5)

    killer = threading.Thread(target=kill_worker_mid_trial, daemon=True)
    killer.start()
    _, rows = run_study(load_study(path), name="kill", storage=str(tmp_path))
    killer.join(timeout=5)
    assert killed, "no training worker was found to kill"
    assert ray.is_initialized()
    (row,) = rows
    assert row["status"] == "completed" and row["last_step"] == 300
    hist = read_history(Path(row["path"]))
    assert {h["stage"] for h in hist} == {0, 1}  # the restarted worker resumed from a checkpoint
    resumed = [h for h in hist if h["stage"] == 1]
    assert resumed[0]["step"] <= max(killed.values()) + 20 and resumed[-1]["step"] == 300


def test_wandb_offline_files_come_from_rank_zero_only(ray_cluster, tmp_path, study_file, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    path = study_file(
        tiny_study(
            '{"drift.kernel": "gaussian"}',
            steps=6,
            every=3,
            extra='"wandb.mode": "offline", "scaling.num_workers": 2',
            trial='{"num_workers": 2, "cpus_per_worker": 1, "max_failures": 0}',
        )
    )
    _, rows = run_study(load_study(path), name="wb", storage=str(tmp_path))
    (row,) = rows
    assert row["status"] == "completed", row
    runs = list((Path(row["path"]) / "wandb").glob("offline-run-*"))
    assert len(runs) == 1  # two workers trained; only rank 0 logged
    assert any(runs[0].glob("*.wandb"))
    meta = json.loads((Path(row["path"]) / "meta.json").read_text())
    assert runs[0].name.endswith("-" + f"wb-{meta['trial_id']}")  # stable id: a resumed trial continues it


def _raydrift(*args, **kw):
    exe = Path(sys.executable).with_name("raydrift")
    return subprocess.Popen(
        [str(exe), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, RAY_AUTH_MODE="disabled"),
        **kw,
    )


def test_interrupted_study_resumes_without_rerunning_finished_trials(tmp_path, study_file):
    path = study_file(
        tiny_study(
            '{"drift.kernel": tune.grid_search(["laplace", "gaussian"])}',
            steps=240,
            every=60,
            extra='"train.checkpoint_every": 30, "train.threads": 1',
            more="MAX_CONCURRENT = 1\n",
        )
    )
    experiment = tmp_path / "resume"
    proc = _raydrift("tune", str(path), "--storage", str(tmp_path), "--name", "resume")
    deadline = time.time() + 300
    first_done = None
    while time.time() < deadline and proc.poll() is None:
        for d in trial_dirs(experiment):
            hist = read_history(d) if (d / "metrics.jsonl").exists() else []
            if any(h["step"] == 240 for h in hist):
                first_done = d
        others = [d for d in trial_dirs(experiment) if d != first_done and (d / "metrics.jsonl").exists()]
        if first_done and others and any(h["step"] >= 60 for h in read_history(others[0])):
            break
        time.sleep(0.5)
    assert first_done is not None and proc.poll() is None, "study did not reach the interrupt point"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    finished_lines = len(read_history(first_done))

    proc = _raydrift("tune", str(path), "--storage", str(tmp_path), "--name", "resume", "--resume")
    out, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, out[-3000:]
    assert "2 trials: 2 completed" in out
    assert len(read_history(first_done)) == finished_lines  # the finished trial was not re-run
    for d in trial_dirs(experiment):
        assert max(h["step"] for h in read_history(d)) == 240


def test_bad_study_file_fails_before_any_trial(tmp_path, study_file):
    path = study_file("from ray import tune\nSPACE = {'drift.kernal': tune.grid_search(['gaussian'])}\n")
    proc = _raydrift("tune", str(path), "--storage", str(tmp_path))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "study.py:2: unknown config key 'drift.kernal'" in out
    assert "Traceback" not in out and not any(tmp_path.glob("study-*"))
