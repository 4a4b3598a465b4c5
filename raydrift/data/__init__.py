"""Data layer: the dataset registry, the loaders, the per-class queues of positives, the image conversions.

Imports torch and numpy only (no config: loaders take plain arguments or a config section by type)."""
