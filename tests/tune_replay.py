"""Recorded learning curves replayed under real Ray Tune: a study whose trials report FIDs from a CSV instead of
training, so the race's Tune scheduler/searcher can be checked against the pure replay
(``benchmarks/scheduler_replay.py``) on the same seed order.

    python tests/tune_replay.py STUDY_FILE STORAGE NAME [--resume]   # run (or resume) such a study

The curves (``write_curves``): four groups ``dim=16/24/32/48`` x four seeds, evals at steps 1..8 (32 images per
step with the study below), FID ``level * (1 + 4 / step)`` with a per-seed offset and noise. ``dim=48`` is
far worse (stopped at rung 0), ``dim=24`` and ``dim=16`` are close (in doubt: extra seeds), and seed 1 of
``dim=16`` dies at step 6 (its trial raises: a missing value).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LEVELS = {"dim=16": 20.0, "dim=24": 26.0, "dim=32": 28.5, "dim=48": 80.0}
DEATH = ("dim=16", 1, 6)  # (group, seed, step): the trial dies there
PER_STEP = 32  # images per step: 4 classes x 8 negatives x 1 worker

STUDY = '''"""Replay study: the race over recorded curves."""
from ray import tune

SPACE = {"model.dim": tune.grid_search([16, 24, 32, 48])}
FIXED = {
    "train.steps": 8, "eval.every": 1, "drift.classes_per_step": 4, "drift.n_neg": 8, "drift.n_pos": 8,
    "model.depth": 1, "model.heads": 2, "drift.compile": False,
}
SEEDS = [0, 1, 2, 3]
SCHEDULER = {"type": "race", "min_seeds": 2, "max_seeds": 4, "eta": 2, "grace_steps": 1, "confidence": 0.95}
MAX_CONCURRENT = 1
TRIAL = {"max_failures": 0}
'''


def write_curves(path: Path, seed: int = 4) -> Path:
    rng = random.Random(seed)
    offsets = [rng.gauss(0, 0.04) for _ in range(4)]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["group", "seed", "images_seen", "fid"])
        for group, level in LEVELS.items():
            for s in range(4):
                for step in range(1, 9):
                    v = level * (1 + 4 / step) * math.exp(offsets[s] + rng.gauss(0, 0.03))
                    if (group, s, step) == DEATH:
                        w.writerow([group, s, step * PER_STEP, "nan"])
                        break
                    w.writerow([group, s, step * PER_STEP, round(v, 4)])
    return path


def write_study(directory: Path) -> Path:
    """The study file and its curves (``curves.csv`` beside it, where :func:`replay_trial` reads them)."""
    write_curves(directory / "curves.csv")
    path = directory / "replay_study.py"
    path.write_text(STUDY)
    return path


def replay_trial(config, study, experiment, experiment_dir) -> None:
    """Tune function trainable: report this (group, seed)'s recorded evals; a NaN row is the trial dying."""
    from ray import tune

    from raydrift.orchestration.study import group_label

    group = group_label({k: config[k] for k in study.space})
    seed = config["train.seed"]
    pause = float(os.environ.get("REPLAY_PAUSE_S", "0"))
    with open(Path(study.path).with_name("curves.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["group"] == group and int(r["seed"]) == seed]
    for r in rows:
        fid = float(r["fid"])
        if not math.isfinite(fid):
            raise RuntimeError(f"{group} seed {seed}: the recorded run died at {r['images_seen']} images")
        time.sleep(pause)
        tune.report({"images_seen": int(r["images_seen"]), "eval/fid": fid, "step": int(r["images_seen"]) // 32})


def pure_decisions(study_path: Path) -> list[tuple]:
    """The pure replay's actionable decisions on the same curves, groups in grid order, one trial at a time."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import scheduler_replay

    curves = scheduler_replay.load_curves(str(Path(study_path).with_name("curves.csv")))
    args = argparse.Namespace(
        grace=PER_STEP, eta=2.0, min_seeds=2, max_seeds=4, confidence=0.95, concurrency=1, per_pair=False, linear=False
    )
    _, race = scheduler_replay.race(curves, list(LEVELS), [0, 1, 2, 3], args)
    return actions([d.__dict__ for d in race.log])


def actions(log: list[dict]) -> list[tuple]:
    """(group, action, verdict, rung, seeds, seed) of every stop / add_seed / fail, in order."""
    keys = ("group", "action", "verdict", "rung", "seeds", "seed")
    return [tuple(d[k] for k in keys) for d in log if d["action"] != "continue"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("study")
    parser.add_argument("storage")
    parser.add_argument("name")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    from raydrift.orchestration.study_file import load_study
    from raydrift.orchestration.tune import run_study

    run_study(load_study(args.study), name=args.name, storage=args.storage, resume=args.resume, trial_fn=replay_trial)
    print("replay study done", flush=True)


if __name__ == "__main__":
    main()
