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


def paired_test(diffs: Sequence[float]) -> tuple[Estimate, float | None]:
    """Paired differences: their ``Estimate`` and the two-sided t test p value of ``mean == 0``.

    Fewer than two differences have no test (p is None); differences that are all equal (sd 0) are
    certainly non-zero (p = 0) unless they are zero (p = 1)."""
    est = mean_ci(diffs)
    if est.n < 2:
        return est, None
    if est.sd == 0:
        return est, 1.0 if est.mean == 0 else 0.0
    from scipy.stats import t

    stat = est.mean / (est.sd / math.sqrt(est.n))
    return est, float(2 * t.sf(abs(stat), est.n - 1))


def holm(p: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p values (None stays None): the i-th smallest of m is multiplied by
    ``m - i + 1`` (i from 1), made monotone and capped at 1; reject where adjusted p < alpha."""
    order = sorted((v, i) for i, v in enumerate(p) if v is not None)
    m, out, running = len(order), list(p), 0.0
    for k, (v, i) in enumerate(order):
        running = max(running, min(1.0, (m - k) * v))
        out[i] = running
    return out
