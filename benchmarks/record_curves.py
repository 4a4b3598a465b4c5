"""Record a grid study's complete learning curves as plain runs: every configuration x seed to the end.

The scheduler replay (``scheduler_replay.py``) needs curves that no policy has cut short. This runs the
grid of a study file (its SPACE of ``tune.grid_search`` axes, FIXED, SEEDS and the preset's study budget,
exactly as ``raydrift tune`` would build each trial) as ``raydrift train --plain`` processes, ``--parallel``
at a time with ``--threads`` torch threads each, one run directory per (configuration, seed) under
``--out``. A run that already finished is skipped, so an interrupted recording continues where it
stopped. Then export the curves::

    python benchmarks/record_curves.py benchmarks/studies/curves_8x8.py --out runs/curves-8x8
    raydrift analyze runs/curves-8x8 --by kernel,normalization,temperatures \\
        --export-curves benchmarks/data/digits_curves_8x8.csv

Why not ``raydrift tune`` (which runs the same grid with ``SCHEDULER = None``): on a 2-core machine a Tune
trial spends ~37 s starting (Tune actor, Train controller, worker) and steps ~26% slower than a plain process
(benchmarks/README.md), which makes 64 short digits runs ~1.5x longer; the training code is the same.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from raydrift.orchestration.race_tune import plan  # noqa: E402
from raydrift.orchestration.study import plain  # noqa: E402
from raydrift.orchestration.study_file import load_study  # noqa: E402
from raydrift.training.rundir import METRICS_FILE, read_history  # noqa: E402


def grid(study) -> list[dict]:
    """The study's grid configurations, as ``raydrift tune`` plans them (``race_tune.plan``)."""
    if study.algorithm != "grid":
        raise SystemExit(f"{study.path}: SEARCH is {study.algorithm}; record_curves runs grids only")
    return [info.params for info in plan(study).values()]


def run_name(params: dict, seed: int) -> str:
    parts = []
    for k in sorted(params):
        v = plain(params[k])
        parts.append("_".join(map(str, v)) if isinstance(v, list) else str(v))
    return "-".join(parts) + f"-s{seed}"


def finished(run_dir: Path, steps: int) -> bool:
    """The run reported its last eval (its metrics file has an ``eval/fid`` record at ``steps``)."""
    if not (run_dir / METRICS_FILE).is_file():
        return False
    return any(r.get("step") == steps and "eval/fid" in r for r in read_history(run_dir))


def command(study, params: dict, seed: int, out: Path, threads: int) -> list[str]:
    overrides = study.trial_overrides(params, seed)
    overrides = {k: v for k, v in overrides.items() if not k.startswith("scaling.")}
    overrides |= {"train.threads": threads, "output_dir": str(out)}
    cmd = [str(Path(sys.executable).with_name("raydrift")), "train", "--preset", study.preset, "--plain"]
    cmd += ["--name", run_name(params, seed), "--overwrite"]
    for k, v in overrides.items():
        v = plain(v)
        cmd += ["--set", f"{k}={v if isinstance(v, str) else json.dumps(v)}"]
    return cmd


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", help="a study file whose SPACE is a grid (e.g. benchmarks/studies/curves_8x8.py)")
    ap.add_argument("--out", required=True, type=Path, help="directory for the run directories")
    ap.add_argument("--parallel", type=int, default=2, help="runs at once (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    ap.add_argument("--dry-run", action="store_true", help="list the runs and stop")
    args = ap.parse_args(argv)
    study = load_study(args.study)
    steps = study.base_config().train.steps
    todo = [(p, s) for s in study.seeds for p in grid(study)]  # seed-major: every group gets its seeds evenly
    todo = [(p, s) for p, s in todo if not finished(args.out / run_name(p, s), steps)]
    print(f"{len(todo)} runs to record ({steps} steps each), {args.parallel} at a time, into {args.out}", flush=True)
    if args.dry_run:
        for p, s in todo:
            print(" ", run_name(p, s))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    running: list[tuple[subprocess.Popen, str, float]] = []
    failed, t0 = [], time.time()
    while todo or running:
        while todo and len(running) < args.parallel:
            p, s = todo.pop(0)
            name = run_name(p, s)
            log = open(args.out / f"{name}.log", "w")
            proc = subprocess.Popen(command(study, p, s, args.out, args.threads), stdout=log, stderr=subprocess.STDOUT)
            running.append((proc, name, time.time()))
        time.sleep(1)
        for item in [r for r in running if r[0].poll() is not None]:
            proc, name, start = item
            running.remove(item)
            if proc.returncode == 2:  # a usage error: every other run would fail the same way
                for other, *_ in running:
                    other.terminate()
                print((args.out / f"{name}.log").read_text(), file=sys.stderr)
                raise SystemExit(f"{name}: raydrift train rejected its command line (above); nothing else was run")
            state = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode}, see {name}.log)"
            failed += [name] if proc.returncode else []
            print(f"[{(time.time() - t0) / 60:5.1f} min] {state:8s} {name} ({time.time() - start:.0f} s)", flush=True)
    print(f"recorded in {(time.time() - t0) / 60:.1f} min; {len(failed)} failed: {failed}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
