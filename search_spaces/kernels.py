"""Kernel study: kernel (Laplace vs Gaussian) x temperatures x normalisation, the report's kernel table.

Default: the embedded digits, a short budget per trial, raced on FID: every configuration starts with two
seeds, a configuration clearly out of the top half at a rung is stopped, one in doubt gets more seeds (up to
8). Real study: ``raydrift tune search_spaces/kernels.py --preset mnist --set data.root=DIR``.
"""

from ray import tune

PRESET = "digits"
SPACE = {
    "drift.kernel": tune.grid_search(["laplace", "gaussian"]),
    "drift.temperatures": tune.grid_search([(0.02, 0.05, 0.2), (0.05, 0.1, 0.2)]),
    "drift.normalization": tune.grid_search(["xy", "y"]),
}
SEEDS = [0, 1]
SCHEDULER = {"type": "race", "min_seeds": 2, "max_seeds": 8, "eta": 2, "grace_steps": 300, "confidence": 0.95}
MAX_CONCURRENT = 2
TRIAL = {"num_workers": 1, "cpus_per_worker": 1, "max_failures": 2}
PRESETS = {  # on top of the shared study budgets (raydrift.config.presets.STUDY_BUDGETS)
    "mnist": {"drift.n_pos": 64, "drift.n_neg": 64, "model.dim": 128, "model.depth": 4},
}
