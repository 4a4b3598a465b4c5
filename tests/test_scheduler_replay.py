"""The scheduler replay benchmark (benchmarks/scheduler_replay.py): CSV reading, compute accounting, the ASHA
replay against Ray's own bracket, the JSON it writes, and the committed synthetic table."""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import make_synthetic_curves  # noqa: E402
import scheduler_replay as replay  # noqa: E402


def write_csv(path: Path, rows: list[tuple[str, int, int, float]]) -> str:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["group", "seed", "images_seen", "fid", "kernel"])
        w.writerows([(*row, "ignored") for row in rows])
    return str(path)


def curve(group: str, seed: int, values: list[float]) -> list[tuple[str, int, int, float]]:
    return [(group, seed, 100 * (k + 1), v) for k, v in enumerate(values)]


@pytest.fixture
def tiny(tmp_path: Path) -> str:
    # a: both seeds to 400 images; b: seed 0 to 400, seed 1 fails after its eval at 200; c: seed 1 reports NaN
    # at 300 (a failure there). Finals: a (10, 12) -> 11; b (20) -> 20; c (30) -> 30.
    rows = curve("a", 0, [50, 30, 20, 10]) + curve("a", 1, [52, 31, 21, 12]) + curve("b", 0, [40, 30, 25, 20])
    rows += curve("b", 1, [41, 33]) + curve("c", 0, [60, 50, 40, 30]) + curve("c", 1, [61, 51, float("nan"), 9])
    return write_csv(tmp_path / "tiny.csv", rows)


def test_load_curves_failures_and_truth(tiny: str):
    c = replay.load_curves(tiny)
    assert c.groups == ["a", "b", "c"] and c.seeds == [0, 1] and c.max_images == 400
    assert c.runs[("b", 1)] == [(100, 41.0), (200, 33.0)] and c.final("b", 1) is None
    assert c.runs[("c", 1)] == [(100, 61.0), (200, 51.0), (300, None)]  # the row after NaN is dropped
    assert c.truth() == {"a": 11.0, "b": 20.0, "c": 30.0}


def test_full_grid_counts_failed_runs_to_their_last_report(tiny: str):
    c = replay.load_curves(tiny)
    out = replay.full_grid(c, c.groups, [0, 1], concurrency=6)
    assert out.compute == 400 + 400 + 400 + 200 + 400 + 300 and out.pick == "a" and out.ticks == 4
    assert replay.full_grid(c, c.groups, [1], concurrency=1).pick == "a"  # b 33 never finished: not b


def test_asha_replay_matches_rays_bracket():
    async_hyperband = pytest.importorskip("ray.tune.schedulers.async_hyperband")

    class T:
        def __init__(self, trial_id):
            self.trial_id = trial_id

    rng = random.Random(0)
    for eta in (2.0, 3.0):
        ours = replay.Asha(grace=100, eta=eta, max_images=800)
        ray_bracket = async_hyperband._Bracket(100, 10**15, eta, 0, stop_last_trials=False)
        trials = {i: T(str(i)) for i in range(12)}
        alive = {i: 0 for i in trials}
        while alive:
            i = rng.choice(sorted(alive))
            alive[i] += 100
            fid = rng.uniform(10, 100)
            stop = ours.stop(str(i), alive[i], fid)
            assert stop == (ray_bracket.on_result(trials[i], alive[i], -fid) == "STOP")
            if stop or alive[i] >= 800:
                del alive[i]


def test_main_writes_the_four_policies(tiny: str, tmp_path: Path, capsys):
    out = tmp_path / "replay.json"
    argv = ["--curves", tiny, "--repeats", "3", "--max-seeds", "2", "--grace", "100", "--json", str(out)]
    summary = replay.main(argv)
    data = json.loads(out.read_text())
    assert list(data["policies"]) == ["full_grid_min_seeds", "full_grid_max_seeds", "asha", "race"]
    assert data["policies"] == summary
    full = summary["full_grid_max_seeds"]
    assert full["compute_fraction"] == 1.0 and full["p_best"] == 1.0 and full["mean_regret"] == 0.0
    for s in summary.values():
        assert 0 < s["compute_fraction"] <= 1 and 0 <= s["p_best"] <= 1 and s["mean_regret"] >= 0
    assert "| race |" in capsys.readouterr().out


def test_race_replay_stops_a_clear_loser_early(tmp_path: Path):
    # Four groups x 4 seeds on 8 evals; "bad" is 3x worse from the start with small seed noise; the others
    # are close. The race must stop "bad" before its runs end and still pick the true best ("g0").
    rng = random.Random(1)
    rows = []
    for group, level in [("g0", 20.0), ("g1", 22.0), ("g2", 24.0), ("bad", 70.0)]:
        for seed in range(4):
            offset = rng.gauss(1, 0.03)
            rows += curve(group, seed, [level * offset * (1 + 8 / (k + 1)) * rng.gauss(1, 0.01) for k in range(8)])
    c = replay.load_curves(write_csv(tmp_path / "clear.csv", rows))
    args = argparse.Namespace(
        grace=100, eta=2.0, min_seeds=2, max_seeds=4, confidence=0.95, concurrency=16, per_pair=False, linear=False
    )
    out, race = replay.race(c, c.groups, [0, 1, 2, 3], args)
    assert race.status("bad").startswith("stopped at rung") and race._groups["bad"].stop_rung < 3
    assert out.pick == "g0"
    assert out.compute < replay.full_grid(c, c.groups, [0, 1, 2, 3], 16).compute


def test_committed_synthetic_table_is_what_the_generator_writes():
    committed = (BENCH / "data" / "synthetic_curves.csv").read_text().splitlines()
    rows = make_synthetic_curves.rows(0, 8, 1200, 150, 320)
    assert len(committed) == len(rows) + 1
    header = committed[0].split(",")
    first = dict(zip(header, next(csv.reader([committed[1]]))))
    assert first == {k: str(v) for k, v in rows[0].items()}
    c = replay.load_curves(str(BENCH / "data" / "synthetic_curves.csv"))
    assert len(c.groups) == 10 and c.seeds == list(range(8)) and c.max_images == 1200 * 320
    failed = [t for t, r in c.runs.items() if r[-1][0] < c.max_images]
    assert failed == [("laplace-T1-y", 5)]  # the diverging seed


def test_the_committed_digits_table_is_a_complete_8x8_study():
    curves = replay.load_curves(str(BENCH / "data" / "digits_curves_8x8.csv"))
    assert len(curves.groups) == 8 and curves.seeds == list(range(8))
    assert curves.max_images == 800 * 320  # the study budget: 800 steps of 320 images
    assert all(curves.final(g, s) is not None for g in curves.groups for s in curves.seeds)  # none cut short
    truth = curves.truth()
    assert max(truth.values()) < 38.7  # every configuration beats the class-mean generator (FID 38.7)
