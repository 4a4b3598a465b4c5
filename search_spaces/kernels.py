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
    "cifar10": {
        "train.steps": 50000,
        "eval.every": 2500,
        "eval.num_samples": 10000,
        "train.log_every": 100,
        "scaling.use_gpu": True,
    },
}
