"""Write synthetic FID learning curves for ``scheduler_replay.py``: the second table, of a known shape.

    python benchmarks/make_synthetic_curves.py                 # -> benchmarks/data/synthetic_curves.csv
    python benchmarks/make_synthetic_curves.py --steps 600 --out /tmp/short.csv

Ten configurations (kernel x temperatures x normalisation, as in the kernels study) x 8 seeds, one row per
eval (every ``--eval-every`` steps of ``--images-per-step`` images). Each configuration's mean curve is a
power law in images seen, ``F + A * t**-b`` (t = images / images at the first eval), fixed by its value at
the first eval, its value at the end and ``b``. Each seed's curve is that mean times

- a seed effect shared by all configurations (same data order and initialisation: ``exp(N(0, 0.05))``),
- a per-run offset ``exp(N(0, 0.06))``,
- an early transient: with probability 0.3 a spike ``exp(N(0.5, 1))`` decaying as ``exp(-(t - 1))``, so a
  seed can sit at several times its twin's FID at the first evals and end level with it (DESIGN.md: one
  digits seed at FID 405 at step 300 whose twin finished at 39),
- eval noise ``exp(N(0, 0.02))`` per report.

What makes the table hard: the true best (``laplace-T1-xy``) starts slowest and ends best, crossing
``gaussian-T1-xy``, which leads early and plateaus higher; two close rivals are set 2.5% and 7.5% behind it
(1% and 3.6% with the seeds drawn at ``--seed 0``); one seed of ``laplace-T1-y`` diverges (FID x2.5 then x9)
and its rows stop: a failed run.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
from pathlib import Path

# name, kernel, temperatures, normalisation, mean FID at the first eval, at the end, power-law exponent
CONFIGS = [
    ("laplace-T1-xy", "laplace", "0.02/0.05/0.2", "xy", 300.0, 40.0, 1.0),
    ("gaussian-T1-xy", "gaussian", "0.02/0.05/0.2", "xy", 110.0, 46.0, 1.4),
    ("laplace-T2-xy", "laplace", "0.05/0.1/0.2", "xy", 170.0, 41.0, 1.0),
    ("laplace-T1-y", "laplace", "0.02/0.05/0.2", "y", 160.0, 43.0, 1.0),
    ("gaussian-T2-xy", "gaussian", "0.05/0.1/0.2", "xy", 150.0, 50.0, 1.0),
    ("laplace-T2-y", "laplace", "0.05/0.1/0.2", "y", 180.0, 55.0, 0.9),
    ("gaussian-T1-y", "gaussian", "0.02/0.05/0.2", "y", 200.0, 65.0, 0.9),
    ("gaussian-T2-y", "gaussian", "0.05/0.1/0.2", "y", 220.0, 80.0, 0.8),
    ("laplace-T1-none", "laplace", "0.02/0.05/0.2", "none", 260.0, 110.0, 0.7),
    ("gaussian-T1-none", "gaussian", "0.02/0.05/0.2", "none", 280.0, 160.0, 0.5),
]
DIVERGING = ("laplace-T1-y", 5, 5, (2.5, 9.0))  # group, seed, first eval index (1-based) that diverges, factors


def mean_curve(t: float, first: float, last: float, b: float, t_end: float) -> float:
    """``F + A t^-b`` through ``(1, first)`` and ``(t_end, last)``."""
    a = (first - last) / (1 - t_end**-b)
    return last - a * t_end**-b + a * t**-b


def rows(seed: int, seeds: int, steps: int, eval_every: int, images_per_step: int) -> list[dict]:
    rng = random.Random(seed)
    evals = [step * images_per_step for step in range(eval_every, steps + 1, eval_every)]
    t_end = evals[-1] / evals[0]
    seed_effect = [rng.gauss(0, 0.05) for _ in range(seeds)]
    out = []
    for name, kernel, temps, norm, first, last, b in CONFIGS:
        for s in range(seeds):
            offset = seed_effect[s] + rng.gauss(0, 0.06)
            spike = math.exp(rng.gauss(0.5, 1.0)) if rng.random() < 0.3 else 0.0
            for k, images in enumerate(evals, start=1):
                t = images / evals[0]
                fid = mean_curve(t, first, last, b, t_end) * math.exp(offset) * (1 + spike * math.exp(-(t - 1)))
                fid *= math.exp(rng.gauss(0, 0.02))
                group, bad_seed, start, factors = DIVERGING
                if (name, s) == (group, bad_seed) and k >= start:
                    if k - start >= len(factors):
                        break  # the run died: no more rows
                    fid *= factors[k - start]
                out.append(
                    {
                        "group": name,
                        "seed": s,
                        "images_seen": images,
                        "fid": round(fid, 3),
                        "kernel": kernel,
                        "temperatures": temps,
                        "normalization": norm,
                    }
                )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).parent / "data" / "synthetic_curves.csv"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=8, help="seeds per configuration")
    parser.add_argument("--steps", type=int, default=1200, help="training steps per run")
    parser.add_argument("--eval-every", type=int, default=150, help="steps between evals")
    parser.add_argument("--images-per-step", type=int, default=320)
    args = parser.parse_args()
    data = rows(args.seed, args.seeds, args.steps, args.eval_every, args.images_per_step)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(data[0]))
        writer.writeheader()
        writer.writerows(data)
    print(f"{len(data)} rows -> {args.out}")


if __name__ == "__main__":
    main()
