"""Ray overhead: one short training run in a plain process, as a 1-worker Ray Train run (Ray Train's
``TorchTrainer``, as raydrift runs use it) and as one Tune trial, timed in the same run; prints the overhead
ratios and where the time goes (a measurement: no test or target depends on it).

Each variant runs the same config (digits preset, ``--steps``) end to end, including evaluation at the end
and checkpointing. The plain variant is a fresh Python process (``raydrift train --plain``, started while
no Ray cluster is running), so its interpreter, import and set-up costs are counted like the Ray workers'.

Costs a study pays once, not per trial, are timed and printed on their own: ``ray.init`` and the first
Train run on a fresh cluster (a short warm-up run; its extra cost over later runs is the cluster's cold
start). The Ray variants then alternate (trainer, trial, trainer, trial, ...) so slow drifts of this shared
machine's speed hit both alike; the minimum over ``--repeats`` is reported.

Every run's ``metrics.jsonl`` splits its wall time into start-up (process launch to the first training
step, from the first record's timestamp), training (the steps, from each logged window's step rate) and
the rest, "tail" (final evaluation, checkpoint, reports, shutdown). The fixed cost per trial (start-up and
tail beyond plain's) does not grow with the run; the training part's ratio is the overhead a long run
converges to. The run length at which the total overhead falls to 10% follows from the two. With
``--idle-cluster`` the plain process also runs beside the idle Ray cluster: Ray's background processes'
share of a small machine, which no Train or Tune setting removes. With ``--bare`` it also times a Train run
and a Tune trial whose functions only report once: what Ray itself costs per run, with no training at all.

    python benchmarks/ray_overhead.py [--steps 400] [--repeats 2] [--idle-cluster] [--threads 2] [--bare]
                                      [--two-trial-study]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STUDY = '''"""overhead benchmark: one trial"""
from ray import tune
SPACE = {{"drift.kernel": "laplace"}}
FIXED = {fixed!r}
SEEDS = {seeds!r}
SCHEDULER = None
TRIAL = {{"num_workers": 1, "cpus_per_worker": 2, "max_failures": 0}}
'''
LOG_EVERY = 50


@dataclass
class Timing:
    total: float
    start: float  # launch -> first training step
    train: float  # the training steps themselves (sum of the logged windows)
    tail: float  # the rest: final evaluation, checkpoint, reports, shutdown

    @staticmethod
    def of(t0: float, t1: float, out: Path) -> Timing:
        """Split ``[t0, t1]`` (``time.time()``) with the one ``metrics.jsonl`` under ``out``."""
        (path,) = list(out.rglob("metrics.jsonl"))
        recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        windows = [r for r in recs if "perf/steps_per_s" in r]  # every LOG_EVERY steps and at the last step
        steps = [r["step"] for r in windows]
        seconds = [(b - a) / r["perf/steps_per_s"] for a, b, r in zip([0, *steps], steps, windows)]
        # the first record is written right after its window (no evaluation before the last step)
        start = windows[0]["time"] - seconds[0] - t0
        train = sum(seconds)
        return Timing(t1 - t0, start, train, (t1 - t0) - start - train)


def overrides(steps: int, out: Path, threads: int) -> dict:
    return {
        "train.steps": steps,
        "eval.every": 0,
        "train.log_every": LOG_EVERY,
        "output_dir": str(out),
        "scaling.cpus_per_worker": 2,
        "train.threads": threads,
    }


def plain(steps: int, out: Path, threads: int) -> Timing:
    exe = Path(sys.executable).with_name("raydrift")
    sets = [a for k, v in overrides(steps, out, threads).items() for a in ("--set", f"{k}={v}")]
    t0 = time.time()
    subprocess.run(
        [str(exe), "train", "--preset", "digits", "--plain", "--name", "plain", *sets], check=True, capture_output=True
    )
    return Timing.of(t0, time.time(), out)


def ray_train(steps: int, out: Path, threads: int) -> Timing:
    from raydrift.config import apply_overrides
    from raydrift.config.presets import get_preset
    from raydrift.orchestration.ray_train import run_training

    cfg = apply_overrides(get_preset("digits"), overrides(steps, out, threads) | {"name": "trainer"})
    t0 = time.time()
    result = run_training(cfg)
    assert result.error is None, result.error
    return Timing.of(t0, time.time(), out)


def tune_study(steps: int, out: Path, threads: int, seeds: tuple[int, ...] = (0,)) -> float:
    """Wall seconds of a study of one trial per seed (trials one after the other: each takes both CPUs)."""
    from raydrift.orchestration.study_file import load_study
    from raydrift.orchestration.tune import run_study

    fixed = {k: v for k, v in overrides(steps, out, threads).items() if k != "output_dir"}
    fixed = preset_values_of_study_budget() | fixed  # the trial trains what the plain run trains
    out.mkdir(parents=True, exist_ok=True)
    path = out / "overhead_study.py"
    path.write_text(STUDY.format(fixed=fixed, seeds=list(seeds)))
    t0 = time.time()
    _, rows = run_study(load_study(path), name="tune", storage=str(out))
    assert [r["status"] for r in rows] == ["completed"] * len(seeds), rows
    return time.time() - t0


def preset_values_of_study_budget() -> dict:
    """The digits preset's own values of the keys a study changes (``STUDY_BUDGETS``: a smaller model and
    batch), so that a study's trial and the plain and Train runs train the same thing."""
    from raydrift.config import to_dict
    from raydrift.config.presets import STUDY_BUDGETS, get_preset

    preset = to_dict(get_preset("digits"))
    values = {}
    for key in STUDY_BUDGETS["digits"]:
        section, name = key.split(".")
        values[key] = preset[section][name]
    return values


def tune_trial(steps: int, out: Path, threads: int) -> Timing:
    t0 = time.time()
    tune_study(steps, out, threads)
    return Timing.of(t0, time.time(), out)


def _report_once(config=None) -> None:
    """A training function / trainable that does nothing but report once: what Train and Tune cost alone."""
    import ray.train

    ray.train.report({"done": 1})


def _tune_report_once(config) -> None:
    from ray import tune

    tune.report({"done": 1})


def bare_runs(out: Path, repeats: int) -> dict[str, float]:
    """Fastest wall time of (a) a 1-worker TorchTrainer run (raydrift's trainer set-up) whose function only reports
    once, (b) a Tune study of one trial (our trial resources) whose function only reports once."""
    import ray.cloudpickle
    from ray import tune
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import this script
    times: dict[str, list[float]] = {"bare Train run": [], "bare Tune trial": []}
    for i in range(repeats):
        t0 = time.time()
        TorchTrainer(
            _report_once,
            scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 2}),
            run_config=RunConfig(name=f"bare{i}", storage_path=str(out)),
        ).fit()
        times["bare Train run"].append(time.time() - t0)
        t0 = time.time()
        tune.Tuner(
            tune.with_resources(_tune_report_once, {"cpu": 0, "memory": 256 * 2**20}),
            run_config=tune.RunConfig(name=f"bare-tune{i}", storage_path=str(out), verbose=0),
        ).fit()
        times["bare Tune trial"].append(time.time() - t0)
    return {k: min(v) for k, v in times.items()}


def report(times: dict[str, list[Timing]], steps: int, repeats: int, threads: int) -> dict[str, Timing]:
    """Print the tables; returns each variant's fastest run."""
    best = {name: min(ts, key=lambda t: t.total) for name, ts in times.items() if ts}
    base = best["plain"]
    print(
        f"\ndigits preset, {steps} steps, eval at the end; min of {repeats}; {threads} training threads on "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'variant':22s} {'total s':>8s} {'ratio':>6s} {'overhead':>9s} {'start':>7s} {'train':>7s} {'tail':>6s}")
    for name, t in best.items():
        print(
            f"{name:22s} {t.total:8.1f} {t.total / base.total:6.2f} {100 * (t.total / base.total - 1):+8.1f}% "
            f"{t.start:7.1f} {t.train:7.1f} {t.tail:6.1f}"
        )
    print("\nper Ray variant: fixed cost per run (start + tail beyond plain's), training-part ratio, and the run")
    print("length (plain wall time) at which its total overhead is 10%")
    for name in ("ray_train", "tune_trial"):
        t = best[name]
        fixed = (t.start + t.tail) - (base.start + base.tail)
        r = t.train / base.train
        # overhead(L) = (fixed + (r - 1) * L_train) / L with L_train ~ L: 10% needs L >= fixed / (0.1 - (r - 1))
        need = f"{fixed / (0.1 - (r - 1)):.0f} s" if r - 1 < 0.1 else "never (training part alone is over 10%)"
        print(f"  {name:20s} fixed {fixed:5.1f} s   training {r:5.3f}x   10% at >= {need}")
    print("\nevery run (total / training part, s), to judge the machine's noise:")
    for name, ts in times.items():
        if ts:
            print(f"  {name:20s} " + "  ".join(f"{t.total:.1f} / {t.train:.1f}" for t in ts))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=400, help="training steps (~60 s plain on 2 cores)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument(
        "--idle-cluster",
        action="store_true",
        help="also time the plain process while the (idle) Ray cluster runs beside it: Ray's background cost",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=2,
        help="training threads; 1 leaves a core of this 2-core machine to Ray's daemons, as a GPU node's spare "
        "cores do",
    )
    ap.add_argument(
        "--bare",
        action="store_true",
        help="also time a Train run and a Tune trial whose functions only report once: Ray's own cost per run",
    )
    ap.add_argument(
        "--two-trial-study",
        action="store_true",
        help="also time a study of two trials (seeds 0 and 1): whether Tune's cost is per study or per trial",
    )
    args = ap.parse_args()
    steps, threads = args.steps, args.threads
    out = Path(tempfile.mkdtemp(prefix="rd-overhead-"))
    times: dict[str, list[Timing]] = {"plain": [], "ray_train": [], "tune_trial": [], "plain+idle_cluster": []}
    two_trials: list[float] = []
    try:
        for i in range(args.repeats):
            times["plain"].append(plain(steps, out / f"p{i}", threads))
        from raydrift.orchestration.ray_train import init_ray

        t0 = time.perf_counter()
        init_ray(temp_dir=tempfile.mkdtemp(prefix="rdo", dir="/tmp"))
        t_init = time.perf_counter() - t0
        warm = ray_train(LOG_EVERY, out / "warm", threads)
        bare = bare_runs(out / "bare", args.repeats) if args.bare else {}
        for i in range(args.repeats):
            times["ray_train"].append(ray_train(steps, out / f"t{i}", threads))
            times["tune_trial"].append(tune_trial(steps, out / f"u{i}", threads))
            if args.idle_cluster:
                times["plain+idle_cluster"].append(plain(steps, out / f"q{i}", threads))
            if args.two_trial_study:
                two_trials.append(tune_study(steps, out / f"w{i}", threads, seeds=(0, 1)))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    best = report(times, steps, args.repeats, threads)
    if two_trials:
        one, two = best["tune_trial"].total, min(two_trials)
        print(f"\na study of 2 trials: {two:.1f} s, {two - one:.1f} s more than the 1-trial study ({one:.1f} s);")
        print(f"  the plain run takes {best['plain'].total:.1f} s, so Tune's cost is per trial if that gap exceeds it")
    if bare:
        print("\nRay's own cost per run, functions that only report once (min of --repeats):")
        print("  " + "   ".join(f"{k} {v:.1f} s" for k, v in bare.items()))
    t = best["ray_train"]
    print(f"\nonce per study: ray.init {t_init:.1f} s; first Train run on the fresh cluster ({LOG_EVERY} steps):")
    print(f"  start {warm.start:.1f} s vs {t.start:.1f} s for later runs (cold start {warm.start - t.start:+.1f} s)")


if __name__ == "__main__":
    main()
