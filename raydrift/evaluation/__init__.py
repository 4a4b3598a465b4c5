"""Evaluation: metric math (FID, IS, diversity), the feature networks behind them (our LeNet, TF-Inception),
cached reference statistics, sample grids, and the :class:`~raydrift.evaluation.evaluator.Evaluator` that
scores a generator with its yardsticks. Imports torch, the data layer and the generators' interface."""
