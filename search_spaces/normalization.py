"""Kernel normalisation study: softmax over targets and samples (xy), over targets only (y), or none.

The report's highest-priority planned ablation (paper Table 11). Default: embedded digits, two seeds.
Real study: ``--preset mnist --set data.root=DIR``.
"""

from ray import tune

PRESET = "digits"
SPACE = {"drift.normalization": tune.grid_search(["xy", "y", "none"])}
SEEDS = [0, 1]
SCHEDULER = {"grace_steps": 300, "reduction_factor": 2}
MAX_CONCURRENT = 2
TRIAL = {"num_workers": 1, "cpus_per_worker": 1, "max_failures": 2}
PRESETS = {  # on top of the shared study budgets (raydrift.config.presets.STUDY_BUDGETS)
    "mnist": {"drift.n_pos": 64, "drift.n_neg": 64, "model.dim": 128, "model.depth": 4},
}
