"""raydrift: tuning drifting models (one-step generators) on Ray."""

__version__ = "0.1.0"
