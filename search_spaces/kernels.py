"""Kernel study: Laplace vs Gaussian kernel, raced over seeds on FID.

Default (the README's main command): the embedded digits at the shared study budget (800 steps, depth 2,
32 positives and negatives per class), each kernel with three seeds (seeds 0-2); at the rung at step 400
a kernel clearly behind the other is stopped (with more configurations, raise ``max_seeds`` so that
one in doubt gets more seeds).

What it found on the embedded data: on a quiet 2-core machine, from a fresh clone,
``raydrift tune search_spaces/kernels.py`` (2026-12-02, 11m29s with set-up) ended with FID @800
gaussian 5.4 ± 3.3 (seeds 5.86, 6.43, 3.89) and laplace 5.9 ± 2.0 (6.15, 6.60, 5.06), paired over
the three seeds not separable (Holm p = 0.22): both far below the class-mean generator's 38.7, within-class
diversity 3.81 / 3.76 (real 4.53). At this budget the seeds spread more than the kernels differ; to decide,
add seeds: ``--seeds 0,1,2,3,4,5`` runs six per kernel (or raise ``min_seeds`` and ``max_seeds`` below).
An earlier 2 x 2 version (kernel x normalisation, 2-3 seeds, 10 trials, 18 minutes) found xy ahead of y
for both kernels (gaussian 5.4 vs 7.5, laplace 6.4 vs 9.2), also not separable at its seed counts:
``normalization.py`` is the study for that axis.

Real study (the report's kernel table; add its
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
