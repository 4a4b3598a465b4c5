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
PRESETS = {
    "digits": {
        "train.steps": 600,
        "eval.every": 150,
        "eval.num_samples": 500,
        "train.log_every": 50,
        "model.depth": 2,
        "drift.n_pos": 32,
        "drift.n_neg": 32,
        "drift.compile": False,
    },
    "mnist": {
        "train.steps": 20000,
        "eval.every": 1000,
        "eval.num_samples": 2000,
        "train.log_every": 100,
        "drift.n_pos": 64,
        "drift.n_neg": 64,
        "model.dim": 128,
        "model.depth": 4,
    },
    "cifar10": {"train.steps": 50000, "eval.every": 2500, "eval.num_samples": 10000, "scaling.use_gpu": True},
}
