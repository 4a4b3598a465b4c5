"""Seed statistics: mean and a 95% confidence interval from Student's t, plain and paired.

The interval is ``mean +/- t_{0.975, n-1} * sd / sqrt(n)`` with ``sd`` the sample standard deviation
(ddof=1). One value has no interval: ``ci`` is None and the estimate is preliminary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

LEVEL = 0.95


@lru_cache(maxsize=256)
def t_quantile(n: int, level: float = LEVEL) -> float:
    """Two-sided t critical value for ``n`` values (``n - 1`` degrees of freedom), e.g. 12.706 for n=2."""
    if n < 2:
        raise ValueError(f"a t interval needs at least 2 values, got {n}")
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, n - 1))


@dataclass(frozen=True)
class Estimate:
    """Mean of ``n`` values with its 95% t half-width ``ci`` (None when n < 2)."""

    n: int
    mean: float | None
    sd: float | None
    ci: float | None

    @property
    def lo(self) -> float | None:
        return None if self.ci is None else self.mean - self.ci

    @property
    def hi(self) -> float | None:
        return None if self.ci is None else self.mean + self.ci


def mean_ci(values: Sequence[float]) -> Estimate:
    """``Estimate`` of finite ``values`` (missing values must already be dropped)."""
    n = len(values)
    if n == 0:
        return Estimate(0, None, None, None)
    mean = math.fsum(values) / n
    if n == 1:
        return Estimate(1, mean, None, None)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return Estimate(n, mean, sd, t_quantile(n) * sd / math.sqrt(n))


def paired_ci(values: Sequence[float], baseline: Sequence[float]) -> Estimate:
    """``Estimate`` of ``values[i] - baseline[i]`` (pairs already matched, e.g. on the seed)."""
    if len(values) != len(baseline):
        raise ValueError(f"paired values need equal lengths, got {len(values)} and {len(baseline)}")
    return mean_ci([v - b for v, b in zip(values, baseline)])
