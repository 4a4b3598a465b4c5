"""Ray overhead: one short training run in a plain process, under a 1-worker TorchTrainer, and as one Tune
trial, timed in the same run; prints the overhead ratios (target: <= 10% for a ~60 s run).

Each variant runs the same config (digits preset, ``--steps``) end to end, including evaluation at the end
and checkpointing. The plain variant is a fresh Python process (``raydrift train --plain``), so its
import and set-up costs are counted like the Ray workers'. ``ray.init`` happens once, before the Ray
variants, and is reported on its own (a study pays it once, not per trial).

    python benchmarks/ray_overhead.py [--steps 400] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STUDY = '''"""overhead benchmark: one trial"""
from ray import tune
SPACE = {{"drift.kernel": "laplace"}}
FIXED = {fixed!r}
SEEDS = [0]
SCHEDULER = None
TRIAL = {{"num_workers": 1, "cpus_per_worker": 2, "max_failures": 0}}
'''


def overrides(steps: int, out: Path) -> dict:
    return {
        "train.steps": steps,
        "eval.every": 0,
        "train.log_every": 50,
        "output_dir": str(out),
        "scaling.cpus_per_worker": 2,
        "train.threads": 2,
    }


def plain(steps: int, out: Path) -> float:
    exe = Path(sys.executable).with_name("raydrift")
    sets = [a for k, v in overrides(steps, out).items() for a in ("--set", f"{k}={v}")]
    t0 = time.perf_counter()
    subprocess.run(
        [str(exe), "train", "--preset", "digits", "--plain", "--name", "plain", *sets], check=True, capture_output=True
    )
    return time.perf_counter() - t0


def torch_trainer(steps: int, out: Path) -> float:
    from raydrift.config import apply_overrides
    from raydrift.launch import run_training
    from raydrift.presets import get_preset

    cfg = apply_overrides(get_preset("digits"), overrides(steps, out) | {"name": "trainer"})
    t0 = time.perf_counter()
    result = run_training(cfg)
    assert result.error is None, result.error
    return time.perf_counter() - t0


def tune_trial(steps: int, out: Path) -> float:
    from raydrift.study import load_study
    from raydrift.tune import run_study

    fixed = {k: v for k, v in overrides(steps, out).items() if k != "output_dir"}
    out.mkdir(parents=True, exist_ok=True)
    path = out / "overhead_study.py"
    path.write_text(STUDY.format(fixed=fixed))
    t0 = time.perf_counter()
    _, rows = run_study(load_study(path), name="tune", storage=str(out))
    assert rows[0]["status"] == "completed", rows
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=400, help="training steps (~60 s plain on 2 cores)")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    out = Path(tempfile.mkdtemp(prefix="rd-overhead-"))
    times: dict[str, list[float]] = {"plain": [], "torch_trainer": [], "tune_trial": []}
    try:
        for i in range(args.repeats):
            times["plain"].append(plain(args.steps, out / f"p{i}"))
        from raydrift.launch import init_ray

        t0 = time.perf_counter()
        init_ray(temp_dir=tempfile.mkdtemp(prefix="rdo", dir="/tmp"))
        t_init = time.perf_counter() - t0
        for i in range(args.repeats):
            times["torch_trainer"].append(torch_trainer(args.steps, out / f"t{i}"))
            times["tune_trial"].append(tune_trial(args.steps, out / f"u{i}"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    base = min(times["plain"])
    print(f"digits preset, {args.steps} steps, eval at the end; min of {args.repeats}; {os.cpu_count()} CPUs")
    print(f"ray.init (once per study, not per trial): {t_init:.1f} s")
    for name, ts in times.items():
        t = min(ts)
        print(f"{name:14s} {t:7.1f} s   ratio {t / base:5.2f}   overhead {100 * (t / base - 1):+6.1f}%")


if __name__ == "__main__":
    main()
