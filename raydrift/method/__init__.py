"""The drifting method, pure torch: the drift field and loss, its kernels and normalisations, the multi-scale
feature sets, and the objective a training step calls. No config, no I/O, no Ray/W&B/click/polars."""
