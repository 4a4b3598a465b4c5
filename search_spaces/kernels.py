"""Kernel study: Laplace vs Gaussian kernel, raced over seeds on FID.

Default (the README's main command): the embedded digits at the shared study budget (800 steps, depth 2,
32 positives and negatives per class), each kernel with three seeds (seeds 0-2); at the rung at step 400
a kernel clearly behind the other is stopped (with more configurations, raise ``max_seeds`` so that
one in doubt gets more seeds).

What it found on the embedded data: @RESULT@

Kernel normalisation is `normalization.py`'s axis. Real study (the report's kernel table; add its
temperatures or normalisation as axes if you like):
``raydrift tune search_spaces/kernels.py --preset mnist --set data.root=DIR``.
"""

from ray import tune

PRESET = "digits"
SPACE = {"drift.kernel": tune.grid_search(["laplace", "gaussian"])}
SEEDS = [0, 1, 2]
SCHEDULER = {"type": "race", "min_seeds": 3, "max_seeds": 3, "eta": 2, "grace_steps": 400, "confidence": 0.95}
MAX_CONCURRENT = 2
TRIAL = {"num_workers": 1, "cpus_per_worker": 1, "max_failures": 2}
PRESETS = {  # on top of the shared study budgets (raydrift.config.presets.STUDY_BUDGETS)
    "mnist": {"drift.n_pos": 64, "drift.n_neg": 64, "model.dim": 128, "model.depth": 4},
}
