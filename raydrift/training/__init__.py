"""Training: the Ray-free per-worker loop, its checkpoints, sample exchange across workers, and the run-
directory format every reader shares. Imports torch and the layers below; never Ray, W&B, click, polars."""
