"""Races under Ray Tune: the Ray-free driver between the pure race and Tune (queue, failures, race.json, resume),
then real Tune runs: recorded curves make the same decisions as the pure replay, an interrupted race resumes to
the same decisions, and a real (training) race study runs end to end from the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tune_replay
from conftest import REPO

from raydrift.orchestration.race import Race, RaceConfig
from raydrift.orchestration.race_driver import FINISHED, GroupInfo, RaceDriver, RaceFile, group_value, race_summary
from raydrift.orchestration.race_stats import Decision


def driver(tmp_path: Path, max_concurrent: int = 2, **config) -> tuple[RaceDriver, list[str]]:
    lines: list[str] = []
    cfg = RaceConfig(**{"max_images": 400, "grace": 100, "eta": 2, "max_seeds": 3, "log_scale": False, **config})
    d = RaceDriver(
        race=Race(cfg),
        plan={g: GroupInfo({"k": g}, g, f"id-{g}") for g in "ABC"},
        max_concurrent=max_concurrent,
        say=lines.append,
        write=RaceFile(str(tmp_path)),
    )
    d.begin(None)
    return d, lines


def test_driver_hands_out_seeds_in_group_order_within_the_concurrency(tmp_path):
    d, _ = driver(tmp_path)
    assert [d.next_trial(t) for t in ("t1", "t2", "t3")] == [("A", 0), ("A", 1), None]  # 2 at once
    d.ended("t1", 400, error=False)
    assert d.next_trial("t3") == ("B", 0)
    saved = RaceFile(str(tmp_path)).read()
    assert saved["queue"] == [["B", 1], ["C", 0], ["C", 1]] and saved["trials"]["t3"] == ["B", 0]
    assert (tmp_path / "race" / "race.json").is_file()


def test_failed_trial_is_a_missing_value_and_a_stop_stops_the_group(tmp_path):
    d, lines = driver(tmp_path, max_concurrent=6)
    trials = {d.next_trial(f"t{i}"): f"t{i}" for i in range(6)}
    # A and B are close, C far worse; A's seed 1 dies before rung 0.
    d.ended(trials[("A", 1)], 50, error=True)
    assert d.race.failed("A", 1) and d.should_stop(trials[("A", 1)])
    for (g, s), value in {("A", 0): 10.0, ("B", 0): 11.0, ("B", 1): 11.5, ("C", 0): 40.0, ("C", 1): 41.0}.items():
        d.result(trials[(g, s)], 100, value)
    values = d.race.to_dict()["groups"]["A"]["values"]
    assert values["0"] == {"0": 10.0} and values["1"] == {}  # seed 1 is missing at rung 0, not a zero
    assert d.should_stop(trials[("C", 0)]) and d.should_stop(trials[("C", 1)])
    assert not d.should_stop(trials[("B", 0)])
    assert any(line.startswith("rung 0 (100 images): C stopped: ") for line in lines)
    assert d.race.status("C").startswith("stopped at rung 0")
    # A's doubt (one live seed) earned it seed 2, queued first.
    assert d.queue[0] == ("A", 2) and "escalated to 3 seeds" in d.race.status("A")


def test_group_end_is_told_once_with_its_mean(tmp_path):
    d, _ = driver(tmp_path, max_concurrent=6)
    told: list[tuple[str, float | None]] = []
    d.on_group_end = lambda g, v: told.append((g, v))
    trials = {d.next_trial(f"t{i}"): f"t{i}" for i in range(6)}
    for (g, s), t in trials.items():
        d.result(t, 100, {"A": 10.0, "B": 30.0, "C": 31.0}[g] + s)
    # Seed effects are exactly additive: C (a constant +1 over B) is out at rung 0 and told its mean there.
    assert told == [("C", 31.5)]
    for (g, s), t in trials.items():
        if not d.should_stop(t):
            d.result(t, 400, {"A": 5.0, "B": 20.0}[g] + s)
        d.ended(t, 400 if g != "C" else 100, error=False)
    assert d.next_trial("t6") == FINISHED
    assert sorted(told) == [("A", 5.5), ("B", 20.5), ("C", 31.5)]  # once each, at the last rung judged
    assert group_value(d.race, "A") == 5.5 and d.race.pick() == "A"


def test_resume_requeues_trials_tune_lost_first_and_keeps_the_race(tmp_path):
    d, _ = driver(tmp_path)
    d.next_trial("t1"), d.next_trial("t2")
    d.result("t1", 100, 10.0)
    saved = RaceFile(str(tmp_path)).read()
    resumed, _ = driver(tmp_path / "other")
    resumed.begin(saved)
    resumed.trial_added("t1", "A", 0, finished=False)  # Tune restored t1 but lost t2 (its checkpoint lagged)
    assert resumed.race.to_dict()["groups"]["A"]["values"]["0"] == {"0": 10.0}
    assert resumed.next_trial("t3") == ("A", 1)  # the lost trial comes back first
    assert resumed.next_trial("t4") is None  # t1 and t3 live: the concurrency holds


def test_race_summary_orders_groups_and_says_why(tmp_path):
    d, _ = driver(tmp_path, max_concurrent=6)
    trials = {d.next_trial(f"t{i}"): f"t{i}" for i in range(6)}
    for (g, s), t in trials.items():
        d.result(t, 100, {"A": 10.0, "B": 11.0, "C": 40.0}[g] + 0.5 * s)
    summary = race_summary(d.to_dict())
    rows = {r["group"]: r for r in summary["groups"]}
    assert rows["C"]["status"].startswith("stopped at rung 0") and "C stopped" in rows["C"]["decision"]
    assert rows["C"]["rung"] == 0 and rows["C"]["n"] == 2 and rows["C"]["mean"] == pytest.approx(40.25)
    assert [r["group"] for r in summary["groups"]][0] == "A"


# ---------------------------------------------------------------- under Ray Tune


@pytest.mark.ray
@pytest.mark.slow
def test_tune_replay_makes_the_pure_replays_decisions(ray_cluster, tmp_path):
    from ray import cloudpickle

    from raydrift.orchestration.study_file import load_study
    from raydrift.orchestration.tune import run_study

    cloudpickle.register_pickle_by_value(tune_replay)  # Ray's workers cannot import tests/
    path = tune_replay.write_study(tmp_path)
    _, rows = run_study(load_study(path), name="replay", storage=str(tmp_path), trial_fn=tune_replay.replay_trial)
    race = RaceFile(str(tmp_path / "replay")).read()
    got = tune_replay.actions(race["race"]["log"])
    assert got == tune_replay.pure_decisions(path)
    assert {a for _, a, *_ in got} == {"stop", "add_seed"}
    assert race["race"]["groups"]["dim=16"]["failed"] == {"1": 160}  # the trial that died: a missing value
    assert race["pick"] == "dim=16" and race["groups"]["dim=48"]["status"].startswith("stopped at rung 0")
    summary = json.loads((tmp_path / "replay" / "summary.json").read_text())
    assert {g["group"]: g["status"] for g in summary["race"]["groups"]} == {
        n: g["status"] for n, g in race["groups"].items()
    }
    assert sum(r["status"] == "failed" for r in rows) == 1


def _replay(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_TMPDIR="/tmp", REPLAY_PAUSE_S="0.4")
    return subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "tune_replay.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        **kw,
    )


@pytest.mark.ray
@pytest.mark.slow
def test_interrupted_race_resumes_to_the_same_decisions(tmp_path):
    path = tune_replay.write_study(tmp_path)
    file = RaceFile(str(tmp_path / "st" / "rep"))
    proc = _replay(str(path), str(tmp_path / "st"), "rep")
    deadline, log = time.time() + 400, []
    while time.time() < deadline and proc.poll() is None:
        data = file.read()
        log = data["race"]["log"] if data else []
        if any(x["action"] == "add_seed" for x in log):
            break
        time.sleep(0.3)
    assert proc.poll() is None and log, "the race did not reach its first escalation"
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=180)
    before = file.read()
    assert any(g["state"] == "running" for g in before["race"]["groups"].values()), "interrupted too late"

    proc = _replay(str(path), str(tmp_path / "st"), "rep", "--resume")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    after = file.read()
    assert tune_replay.actions(after["race"]["log"]) == tune_replay.pure_decisions(path)
    # The decisions made before the interruption were kept, not made again.
    n = len(tune_replay.actions(before["race"]["log"]))
    assert tune_replay.actions(after["race"]["log"])[:n] == tune_replay.actions(before["race"]["log"])


REAL_RACE = '''"""Real race smoke study: three learning rates on the embedded digits, one that cannot learn."""
from ray import tune

SPACE = {"optim.lr": tune.grid_search([2e-3, 1e-3, 1e-9])}
FIXED = {
    "train.steps": 30, "train.log_every": 10, "eval.every": 10, "eval.num_samples": 100,
    "model.dim": 32, "model.depth": 1, "model.heads": 2, "drift.n_pos": 8, "drift.n_neg": 8,
    "drift.classes_per_step": 4, "drift.compile": False, "optim.warmup_steps": 0,
}
SEEDS = [0, 1]
SCHEDULER = {"type": "race", "min_seeds": 2, "max_seeds": 3, "eta": 2, "grace_steps": 10}
MAX_CONCURRENT = 2
TRIAL = {"max_failures": 0}
'''


@pytest.mark.ray
@pytest.mark.slow
def test_real_race_study_runs_from_the_command_line(tmp_path, study_file):
    path = study_file(REAL_RACE)
    exe = Path(sys.executable).with_name("raydrift")
    proc = subprocess.run(
        [str(exe), "tune", str(path), "--storage", str(tmp_path), "--name", "realrace"],
        capture_output=True,
        text=True,
        timeout=1500,
        env=dict(os.environ, RAY_AUTH_MODE="disabled", RAY_TMPDIR="/tmp"),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "race (eta 2, first rung at step 10, 95% Holm)" in out and "3 configurations x 2-3 seeds" in out
    race = RaceFile(str(tmp_path / "realrace")).read()
    assert race["pick"] in race["groups"] and f"race: pick {race['pick']}" in out
    log = [Decision.from_dict(d) for d in race["race"]["log"]]
    assert log and all(f"race    {d.describe()}" in out for d in log)  # one progress line per decision
    summary = json.loads((tmp_path / "realrace" / "summary.json").read_text())
    statuses = {r["group"]: r["status"] for r in summary["race"]["groups"]}
    assert set(statuses) == {"lr=0.002", "lr=0.001", "lr=1e-09"}
    rows = summary["trials"]
    assert all(r["race"] == statuses[r["group"]] for r in rows)
    for group, g in race["groups"].items():  # every seed the race handed out ran, unless its group was stopped
        ran = sorted(r["seed"] for r in rows if r["group"] == group)
        if g["status"].startswith("stopped"):
            assert set(ran) <= set(g["seeds"])
        else:
            assert ran == sorted(g["seeds"]) and all(r["status"] == "completed" for r in rows if r["group"] == group)


HYPEROPT_RACE = '''"""HyperOpt race."""
from ray import tune

SPACE = {"optim.lr": tune.loguniform(1e-4, 1e-2), "drift.kernel": "laplace"}
FIXED = {"train.steps": 8, "eval.every": 1, "drift.classes_per_step": 4, "drift.n_neg": 8, "drift.n_pos": 8}
SEARCH = {"algorithm": "hyperopt", "num_samples": 3, "n_initial_points": 2}
SCHEDULER = {"type": "race", "min_seeds": 2, "max_seeds": 3, "grace_steps": 1}
MAX_CONCURRENT = 4
'''


def test_hyperopt_race_asks_hyperopt_per_group_and_tells_it_the_groups_mean(tmp_path, study_file):
    from hyperopt.base import JOB_STATE_DONE, JOB_STATE_ERROR
    from ray import cloudpickle

    from raydrift.orchestration.race_tune import race_parts
    from raydrift.orchestration.study import group_label
    from raydrift.orchestration.study_file import load_study

    study = load_study(study_file(HYPEROPT_RACE))
    searcher, scheduler = race_parts(study, str(tmp_path / "exp"), images_per_step=32)
    assert scheduler.set_search_properties("eval/fid", "min")
    configs = {t: searcher.suggest(t) for t in ("t0", "t1", "t2", "t3", "t4")}
    assert configs["t4"] is None  # four at once
    d = searcher.driver
    assert [d.who(t) for t in configs if configs[t]] == [("h0", 0), ("h0", 1), ("h1", 0), ("h1", 1)]
    assert configs["t0"]["optim.lr"] == configs["t1"]["optim.lr"] != configs["t2"]["optim.lr"]  # one config, 2 seeds
    assert configs["t0"]["drift.kernel"] == "laplace" and configs["t1"]["train.seed"] == 1
    assert d.groups["h0"].label == group_label({k: configs["t0"][k] for k in study.space})
    for t in ("t0", "t1"):  # h0 runs to the end and is the only group judged: nothing stops it
        d.result(t, 256, 20.0 + d.who(t)[1])
        d.ended(t, 256, error=False)
    d.ended("t2", 64, error=True)  # h1: both seeds die, the group fails
    d.ended("t3", 64, error=True)
    state = cloudpickle.loads((tmp_path / "exp" / "race" / "hyperopt.pkl").read_bytes())
    trials = state["_hpopt_trials"]
    assert [(t["state"], t["result"]["loss"]) for t in trials.trials] == [(JOB_STATE_DONE, 20.5)]  # h0's mean
    assert trials.count_by_state_unsynced(JOB_STATE_ERROR) == 1  # h1 failed: an error, not a result
    assert d.race.status("h1") == "failed" and "h2" not in {g for g, _ in d.trials.values()}


def test_cli_dry_run_describes_the_race_and_refuses_retry_failed(tmp_path):
    from click.testing import CliRunner

    from raydrift.cli import main

    kernels = str(REPO / "search_spaces" / "kernels.py")
    out = CliRunner().invoke(main, ["tune", kernels, "--dry-run", "--storage", str(tmp_path)])
    assert out.exit_code == 0 and "2 configurations x 3 seeds" in out.output
    assert "race (eta 2, first rung at step 400, 95% Holm)" in out.output and "x seeds raced" in out.output
    out = CliRunner().invoke(main, ["tune", kernels, "--resume", "--retry-failed", "--storage", str(tmp_path)])
    assert out.exit_code == 2 and "--retry-failed does not apply to a race study" in out.output


def test_analyze_reads_the_race_status_per_group(tmp_path):
    from analysis.verdict import read_scheduler_status

    d, _ = driver(tmp_path, max_concurrent=6)
    trials = {d.next_trial(f"t{i}"): f"t{i}" for i in range(6)}
    for (g, s), t in trials.items():
        d.result(t, 100, {"A": 10.0, "B": 11.0, "C": 40.0}[g] + 0.5 * s)
    status = read_scheduler_status([tmp_path])  # <experiment>/race/race.json
    assert status["C"] == status["id-C"] == d.race.status("C") and status["C"].startswith("stopped at rung 0")
