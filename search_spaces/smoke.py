"""Smoke study: a tiny kernel x seed grid on the embedded digits, for tests and a first look (a minute or two)."""

from ray import tune

PRESET = "digits"
SPACE = {"drift.kernel": tune.grid_search(["laplace", "gaussian"])}
FIXED = {
    "train.steps": 20,
    "train.log_every": 5,
    "eval.every": 10,
    "eval.num_samples": 200,
    "model.dim": 32,
    "model.depth": 1,
    "model.heads": 2,
    "drift.n_pos": 16,
    "drift.n_neg": 16,
    "drift.compile": False,
}
SEEDS = [0, 1]
SCHEDULER = {"grace_steps": 10, "reduction_factor": 2}
MAX_CONCURRENT = 2
TRIAL = {"num_workers": 1, "cpus_per_worker": 1, "max_failures": 2}
