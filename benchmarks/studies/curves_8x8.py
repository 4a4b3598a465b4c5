"""The scheduler replay's real table: 8 digits configurations x 8 seeds, every trial run to the end.

kernel (laplace, gaussian) x normalisation (xy, y) x temperatures (the paper's three, 0.02/0.05/0.2, or
0.05 alone), seeds 0-7, at the shared digits study budget (800 steps) with an eval every 100 steps, and no
early stopping (``SCHEDULER = None``), so that ``benchmarks/scheduler_replay.py`` can replay any policy on
the complete curves. Recorded as plain runs (``record_curves.py`` runs this file's grid exactly as
``raydrift tune`` would build each trial, without Tune's per-trial start-up)::

    python benchmarks/record_curves.py benchmarks/studies/curves_8x8.py --out runs/curves-8x8
    raydrift analyze runs/curves-8x8 --by kernel,normalization,temperatures \
        --export-curves benchmarks/data/digits_curves_8x8.csv

``raydrift tune benchmarks/studies/curves_8x8.py`` runs the same 64 trials under Ray Tune (on a machine
with more cores than this project's 2-core CI machines, where that is the natural way).
"""

from ray import tune

PRESET = "digits"
SPACE = {
    "drift.kernel": tune.grid_search(["laplace", "gaussian"]),
    "drift.normalization": tune.grid_search(["xy", "y"]),
    "drift.temperatures": tune.grid_search([[0.02, 0.05, 0.2], [0.05]]),
}
FIXED = {"eval.every": 100}
SEEDS = [0, 1, 2, 3, 4, 5, 6, 7]
SCHEDULER = None
MAX_CONCURRENT = 2
TRIAL = {"num_workers": 1, "cpus_per_worker": 1, "max_failures": 2}
