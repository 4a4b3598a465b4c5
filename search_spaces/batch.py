"""Batch study: positives = negatives per class in {32, 64, 128} (the report's batch-size table).

``drift.n_pos`` is tied to ``drift.n_neg``. Default: embedded digits, two seeds, a few minutes per trial
on a 2-core CPU. Real study: ``--preset mnist --set data.root=DIR``.
"""

from ray import tune

PRESET = "digits"
SPACE = {"drift.n_neg": tune.grid_search([32, 64, 128])}
TIED = {"drift.n_pos": "drift.n_neg"}
SEEDS = [0, 1]
SCHEDULER = None  # unequal batches: compare every run to the end, matched by step
MAX_CONCURRENT = 2
TRIAL = {"num_workers": 1, "cpus_per_worker": 1, "max_failures": 2}
PRESETS = {  # on top of the shared study budgets (raydrift.config.presets.STUDY_BUDGETS)
    "digits": {"train.steps": 500, "eval.every": 125},
    "mnist": {"train.steps": 23400},
    "cifar10": {"train.steps": 3000, "eval.every": 250},
}
