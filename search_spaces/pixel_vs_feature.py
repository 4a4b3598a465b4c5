"""Pixel- vs feature-space drifting at the same budget (the report's planned ablation 3).

Feature space uses raydrift's own MAE encoder (``drift.encoder_weights=auto``: trained once on the
dataset's train split with the default recipe and cached, so no outside weights are needed; pass a file
from ``raydrift encoder train`` instead to control it). Default: embedded digits, two seeds. Real study:
``--preset mnist --set data.root=DIR`` (or ``--set drift.encoder=dinov2`` etc. where weights download).
"""

from ray import tune

PRESET = "digits"
SPACE = {"drift.space": tune.grid_search(["pixel", "feature"])}
FIXED = {"drift.encoder": "mae", "drift.encoder_weights": "auto"}
SEEDS = [0, 1]
SCHEDULER = None  # both spaces run to the end: the comparison is at matched steps
MAX_CONCURRENT = 2
TRIAL = {"num_workers": 1, "cpus_per_worker": 1, "max_failures": 2}
