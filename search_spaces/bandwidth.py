"""Bandwidth study: HyperOpt TPE over the three temperatures and their annealing rate.

Each suggested configuration runs once per seed (the search sees the seed-mean FID). Default: embedded
digits, 4 configurations x 2 seeds. Real study: ``--preset mnist --set data.root=DIR``.
"""

from ray import tune

PRESET = "digits"
SPACE = {
    "drift.temperatures[0]": tune.loguniform(0.005, 0.05),
    "drift.temperatures[1]": tune.loguniform(0.02, 0.2),
    "drift.temperatures[2]": tune.loguniform(0.1, 1.0),
    "drift.anneal_rate": tune.uniform(0.0, 2e-3),
}
FIXED = {"drift.anneal_floor": 0.005}
SEEDS = [0, 1]
SEARCH = {"algorithm": "hyperopt", "num_samples": 4, "n_initial_points": 2, "seed": 0}
SCHEDULER = {"grace_steps": 300, "reduction_factor": 2}
MAX_CONCURRENT = 2
TRIAL = {"num_workers": 1, "cpus_per_worker": 1, "max_failures": 2}
PRESETS = {"mnist": {"train.steps": 10000}}  # on top of the shared study budgets (STUDY_BUDGETS)
