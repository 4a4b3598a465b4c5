"""The race's statistics (pure): pooled seed noise of a rung, paired comparisons on shared seeds, Holm; and
the record of one judgment (:class:`Decision`) with its one-line account.

A rung's table is ``y[group][seed]`` (the metric, or its log; see :mod:`raydrift.orchestration.race`). It is
fitted by the additive two-way model of a randomised block design, ``y = mu_group + beta_seed + e`` (seeds
are the blocks: same data order, initialisation and eval noise in every group). The residual variance
``s^2 = RSS / df``, ``df = cells - (groups + seeds - components)``, is the seed noise of one run once the
shared seed effect is removed, pooled over every group at the rung. A paired comparison of two groups on
their ``n`` shared seeds has mean difference ``d`` and standard error ``s * sqrt(2 / n)``, tested with ``df``
degrees of freedom: the classic pooled-error comparison after a two-way ANOVA (Fisher's LSD on blocks; F-Race's
post-hoc pools the same way on ranks), which has ``(groups - 1)(n - 1)`` degrees of freedom where a lone pair
has ``n - 1`` (1 with two seeds: t = 12.7 at 95%, before any correction).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from analysis.stats import Estimate, t_quantile

Table = dict[str, dict[int, float]]


def estimate(values: Sequence[float], level: float) -> Estimate:
    """Mean of ``values`` with its t half-width at ``level`` (None below two values)."""
    n = len(values)
    mean = math.fsum(values) / n
    if n == 1:
        return Estimate(1, mean, None, None)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return Estimate(n, mean, sd, t_quantile(n, level) * sd / math.sqrt(n))


@dataclass(frozen=True)
class Noise:
    """Pooled residual sd of one run at a rung and its degrees of freedom."""

    sd: float
    df: int


def pooled_noise(table: Table) -> Noise | None:
    """Residual sd of the additive (group + seed) fit of ``table``; None without residual degrees of freedom."""
    cells = [(g, s, y) for g, row in table.items() for s, y in row.items()]
    groups, seeds = sorted(table), sorted({s for _, s, _ in cells})
    df = len(cells) - (len(groups) + len(seeds) - _components(cells))
    if df < 1:
        return None
    mu, beta = dict.fromkeys(groups, 0.0), dict.fromkeys(seeds, 0.0)
    for _ in range(1000):  # backfitting: exact least squares at convergence, the tables are tiny
        mu = {g: math.fsum(y - beta[s] for s, y in table[g].items()) / len(table[g]) for g in groups}
        new = {s: _mean([y - mu[g] for g, t, y in cells if t == s]) for s in seeds}
        change = max(abs(new[s] - beta[s]) for s in seeds)
        beta = new
        if change < 1e-12:
            break
    rss = math.fsum((y - mu[g] - beta[s]) ** 2 for g, s, y in cells)
    return Noise(math.sqrt(rss / df), df)


def _mean(xs: list[float]) -> float:
    return math.fsum(xs) / len(xs)


def _components(cells: list[tuple[str, int, float]]) -> int:
    """Connected components of the group-seed graph (one per set of groups linked by shared seeds)."""
    parent: dict[object, object] = {}

    def root(x: object) -> object:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for g, s, _ in cells:
        parent[root(("g", g))] = root(("s", s))
    return len({root(x) for x in list(parent)})


@dataclass(frozen=True)
class Paired:
    """``a - b`` on ``n`` shared seeds: mean difference, its standard error on ``df`` degrees of freedom, and
    the two-sided p-value (1 with fewer than two shared seeds: a verdict never rests on one seed)."""

    n: int
    diff: float | None
    se: float | None
    df: int
    p: float


def paired(a: dict[int, float], b: dict[int, float], noise: Noise | None) -> Paired:
    """With ``noise`` the standard error is ``noise.sd * sqrt(2 / n)`` on ``noise.df``; without it, the pair's
    own sd of the differences over ``sqrt(n)`` on ``n - 1``."""
    diffs = [a[s] - b[s] for s in sorted(a.keys() & b.keys())]
    n = len(diffs)
    if n < 2:
        return Paired(n, diffs[0] if diffs else None, None, 0, 1.0)
    mean = math.fsum(diffs) / n
    if noise is None:
        se, df = math.sqrt(math.fsum((x - mean) ** 2 for x in diffs) / (n - 1) / n), n - 1
    else:
        se, df = noise.sd * math.sqrt(2 / n), noise.df
    if se == 0:
        return Paired(n, mean, 0.0, df, 1.0 if mean == 0 else 0.0)
    from scipy.stats import t

    return Paired(n, mean, se, df, float(2 * t.sf(abs(mean) / se, df)))


def resolvable(test: Paired, n_max: int, level: float, pooled: bool) -> bool:
    """Whether ``n_max`` shared seeds could make ``test``'s difference significant at ``level``: its half-width
    at ``n_max`` (same noise; pooled: same df, per pair: ``n_max - 1``) would be below the observed ``|diff|``.
    Unknown noise (fewer than two shared seeds) counts as resolvable."""
    if test.se is None or test.diff is None:
        return True
    df = test.df if pooled else n_max - 1
    return t_quantile(df + 1, level) * test.se * math.sqrt(test.n / n_max) < abs(test.diff)


@dataclass(frozen=True)
class Comparison:
    """``group - ref`` on ``n`` shared seeds: mean difference ``diff`` and its t half-width at ``level`` (the
    Holm level of the test, or the study's confidence for the leader) on ``df`` degrees of freedom, ``p`` the
    (Holm-adjusted) p-value. On the log scale (``log``) the difference is a log ratio: :meth:`text` shows %."""

    ref: str
    n: int
    diff: float | None
    half_width: float | None
    level: float
    p: float
    df: int
    log: bool

    @classmethod
    def of(cls, ref: str, test: Paired, level: float, p: float, log: bool) -> Comparison:
        hw = None if test.se is None else t_quantile(test.df + 1, level) * test.se
        return cls(ref, test.n, test.diff, hw, level, p, test.df, log)

    def text(self, unit: str) -> str:
        """E.g. ``+31.0% [+18.2%, +45.1%]`` (log scale) or ``+12.3 ± 4.1 FID``; ``no shared seeds`` if none."""
        if self.diff is None:
            return "no shared seeds"
        if not self.log:
            spread = "" if self.half_width is None else f" ± {self.half_width:.1f}"
            return f"{self.diff:+.1f}{spread} {unit}"
        text = f"{100 * math.expm1(self.diff):+.1f}%"
        if self.half_width is not None:
            lo, hi = (100 * math.expm1(self.diff + k * self.half_width) for k in (-1, 1))
            text += f" [{lo:+.1f}%, {hi:+.1f}%]"
        return text


def holm(p: Sequence[float]) -> tuple[list[float], list[int]]:
    """Holm-adjusted p-values and each test's step (0 = smallest p, tested at alpha / m)."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    adjusted, steps, running = [1.0] * len(p), [0] * len(p), 0.0
    for step, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - step) * p[i]))
        adjusted[i], steps[i] = running, step
    return adjusted, steps


@dataclass(frozen=True)
class Decision:
    """One judgment of one group. ``action``: stop | add_seed | continue | fail. ``verdict``: out | in | doubt |
    unresolved | deferred | pending | failed (module doc). ``estimate``: the group's metric at the rung (n
    seeds, mean, t interval at the study's confidence); ``vs_ref``: the Holm-corrected test behind the verdict
    (against the cut group, or the first group out); ``vs_leader``: the paired difference to the rung's leader
    at the study's confidence, uncorrected (for tables); ``rank`` among ``ranked`` groups with values at the
    rung, the top ``cut`` kept, ``needed`` groups to judge (pending); ``for_group``: on an add_seed, the group
    whose doubtful comparison the seed is for, when not this one."""

    group: str
    action: str
    verdict: str
    rung: int
    images: int
    seeds: int
    seed: int | None = None
    rank: int = 0
    ranked: int = 0
    cut: int = 0
    needed: int = 0
    estimate: Estimate | None = None
    vs_ref: Comparison | None = None
    vs_leader: Comparison | None = None
    metric: str = "FID"
    confidence: float = 0.95
    max_seeds: int = 0
    for_group: str | None = None

    def describe(self) -> str:
        """The one-line, human account of this decision."""
        if self.verdict == "failed":
            return f"{self.group} failed: all {self.seeds} seeds failed"
        head = f"rung {self.rung} ({self.images:,} images): {self.group}"
        if self.verdict == "pending":
            have = f"{self.ranked} group has" if self.ranked == 1 else f"{self.ranked} groups have"
            return f"{head} continues: {have} results, {self.needed} needed to judge"
        est = self.estimate
        spread = f" ± {est.ci:.1f}" if est.ci is not None else ""
        where = f"mean {est.mean:.1f}{spread} (n {est.n}), rank {self.rank}/{self.ranked}, top {self.cut} kept"
        ref = self.vs_ref
        what = "cut group" if self.rank > self.cut else "first group out"
        pooled = f", seed noise pooled on {ref.df} df" if ref.n and ref.df > ref.n - 1 else ""
        evidence = (
            f"{ref.text(self.metric)} vs {what} {ref.ref} on {ref.n} shared seeds "
            f"(Holm {100 * self.confidence:g}%, p {ref.p:.3g}{pooled})"
        )
        if self.action == "stop":
            verb = "stopped"
        elif self.action == "add_seed" and self.for_group:
            verb = f"seed {self.seed} added ({self.seeds + 1} seeds) to share it with {self.for_group}, in doubt"
        elif self.action == "add_seed":
            verb = f"in doubt -> seed {self.seed} added ({self.seeds + 1} seeds)"
        elif self.verdict == "in":
            verb = "clearly in"
        elif self.verdict == "deferred":
            verb = "in doubt, left to the final rung (its seeds would finish before a new one got here), continues"
        elif self.verdict == "unresolved":
            verb = f"in doubt, more seeds (up to {self.max_seeds}) would not resolve it here, continues"
        elif self.seeds < self.max_seeds:
            verb = f"in doubt, continues: needs more seeds shared with {self.vs_ref.ref} first"
        else:
            verb = f"in doubt at max seeds ({self.seeds}), continues"
        return f"{head} {verb}: {evidence}; {where}"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Decision:
        d = dict(d)
        d["estimate"] = Estimate(**d["estimate"]) if d.get("estimate") else None
        for key in ("vs_ref", "vs_leader"):
            d[key] = Comparison(**d[key]) if d.get(key) else None
        return cls(**d)
