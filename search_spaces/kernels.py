"""Kernel study: kernel (Laplace vs Gaussian) x temperatures x normalisation, the report's kernel table.

Default: the embedded digits, a short budget per trial, two seeds, ASHA on FID; about 10-15 minutes on
a 2-core CPU. Real study: ``raydrift tune search_spaces/kernels.py --preset mnist --set data.root=DIR``.
"""

from ray import tune

PRESET = "digits"
SPACE = {
    "drift.kernel": tune.grid_search(["laplace", "gaussian"]),
    "drift.temperatures": tune.grid_search([(0.02, 0.05, 0.2), (0.05, 0.1, 0.2)]),
    "drift.normalization": tune.grid_search(["xy", "y"]),
}
SEEDS = [0, 1]
SCHEDULER = {"grace_steps": 300, "reduction_factor": 2}
MAX_CONCURRENT = 2
TRIAL = {"num_workers": 1, "cpus_per_worker": 1, "max_failures": 2}
PRESETS = {  # on top of the shared study budgets (raydrift.config.presets.STUDY_BUDGETS)
    "mnist": {"drift.n_pos": 64, "drift.n_neg": 64, "model.dim": 128, "model.depth": 4},
}
