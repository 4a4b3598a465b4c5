"""Racing over configuration groups: the pure decision logic behind ``SCHEDULER = {"type": "race", ...}``.

State in, decisions out; no Ray (a Tune scheduler/searcher pair drives a :class:`Race`). A *group* is one
configuration, its trials are its seeds; the race judges groups, never single trials (DESIGN.md, "Decisions
are about configurations, judged on their seeds at one step").

**Rungs.** ``grace * eta**k`` images seen (rounded) below ``max_images``, then ``max_images``: the *final*
rung. A seed reaches a rung at its first report with ``images_seen >= milestone``; that report's value is
its value there (one report can serve two rungs). A study evaluates every trial on one cadence, so a rung's
values are all taken at the same step.

**One rung.** The *alive* groups at rung r are those not failed and not stopped before r (N of them); the
cut keeps the top ``c = ceil(N / eta)``, ``c = 1`` at the final rung (the race for the pick). Groups with
values at r are ranked by mean; one below the cut is compared with the cut group (rank c), one at or above
it with the first group out (rank c + 1), on the seeds both have at r. Verdicts: **out** (significantly
worse), **in** (significantly better), **doubt**, or **pending** while fewer than ``c + 1`` groups have
values there: a rung never stops a group before ``c`` groups are there to beat it, and groups that have not
arrived beat nobody, so asynchronous arrival can only delay a stop.

**The test.** FID seed noise is multiplicative (our digits study: one seed at 405 at step 300, its twin at
39), so the race works on log values (``log_scale``; differences read as ratios). Seeds are blocks: the same
seed shares data order, initialisation and eval noise across groups, so a comparison is the paired mean
difference on shared seeds. Its standard error uses the seed noise pooled over every group at the rung (the
residual of the additive group + seed fit, :mod:`.race_stats`): with two seeds a lone pair has one degree
of freedom (t = 12.7 at 95%) where the pooled fit has about one per group. Rank tests cannot decide on 2-8
seeds (F-Race, Birattari et al. GECCO 2002, Friedman; Optuna's ``WilcoxonPruner``: a two-sided signed-rank
test needs 6 pairs for p < 0.05), and Hoeffding races (Maron & Moore, NIPS 1993) need a known range of the
metric, which FID lacks. irace (Lopez-Ibanez et al., ORP 2016) uses the same paired t test with a Holm
correction; the pooled error is the classic comparison after a two-way ANOVA, as F-Race's post-hoc pools
over configurations. ``pooled=False`` tests each pair on its own spread (measured on the synthetic replay
table: 4.0 seeds per group and 0.50 of the 8-seed grid's compute, against 2.7 and 0.33 pooled).

**The correction.** Holm (Scand. J. Stat. 1979) over the rung's distinct comparisons (groups with values
minus one), family-wise error ``1 - confidence`` under any dependence (the comparisons share reference
groups); uniformly more powerful than Bonferroni. Intervals are shown at each test's Holm level. As in
F-Race and irace, repeated looks as seeds arrive are not corrected for; ``max_seeds`` bounds them.

**Doubt.** A group in doubt earns seeds rather than a verdict, as PASHA (Bohdal et al. 2023) grows resources
while a ranking is unstable, here measured by the seed noise. Seeds are handed out in one order
(``RaceConfig.seeds``), so a pair shares the shorter prefix: the pair's side with fewer seeds gets the next
one (both when equal), up to ``max_seeds``; the group is not judged again below that rung until the seed
has reached it. Two kinds of doubt continue without a seed: **unresolved**, when even ``max_seeds`` shared
seeds would leave the observed difference inside its interval (early heavy-tailed rungs, near-ties: seeds
would be spent on noise), and **deferred**, at an intermediate rung when the group's other seeds would have
finished before a new seed reached the rung (a stop would save nothing: the final rung judges it). Doubt at
``max_seeds`` continues too: doubt is never a stop. Measured on the synthetic table: escalating on every
doubt drove every group to 8 seeds at the first rung (compute 0.8 of the full grid at 8 seeds).

**Asynchrony.** A group is judged once every live seed (handed out, not failed) has reached a rung, at the
highest such rung with a verdict, and re-judged on every :meth:`Race.decide` as the others change. *out*
stops the group (its trials at their next report, its unstarted seeds never). A stop at the final rung
saves no compute but takes the group out of the pick.

**Failures.** A failed seed (worker death past ``max_failures``, a non-finite value) is missing at every rung
it had not reached, never a zero or a win; its earlier values stay. A group whose seeds all failed is
*failed*. A group with fewer than two shared seeds at a rung is in doubt there, so it gets a seed.

**Pick.** :meth:`Race.pick`: the lowest (``mode="max"``: highest) mean at the final rung over the groups
still in the race (not stopped, not failed), ties to more seeds, then name; :meth:`Race.leader`: the same
at the highest rung reached.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .race_stats import Comparison, Decision, Noise, estimate, holm, paired, pooled_noise, resolvable


@dataclass(frozen=True)
class RaceConfig:
    """``max_images``: images seen at the study's last eval; ``grace``: images at rung 0; ``seeds``: the order
    in which seeds are handed out (default ``0 .. max_seeds-1``); ``mode``: ``min`` (FID) or ``max``."""

    max_images: int
    grace: int
    eta: float = 2.0
    min_seeds: int = 2
    max_seeds: int = 8
    confidence: float = 0.95
    mode: str = "min"
    seeds: tuple[int, ...] = ()
    metric: str = "FID"
    log_scale: bool = True
    pooled: bool = True

    def __post_init__(self) -> None:
        if not self.seeds:
            object.__setattr__(self, "seeds", tuple(range(self.max_seeds)))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {self.mode!r}")
        if not (1 <= self.min_seeds <= self.max_seeds <= len(set(self.seeds)) == len(self.seeds)):
            raise ValueError("need 1 <= min_seeds <= max_seeds <= number of distinct seeds")
        if self.eta <= 1 or self.grace <= 0 or self.max_images <= 0 or not 0 < self.confidence < 1:
            raise ValueError("need eta > 1, grace > 0, max_images > 0 and 0 < confidence < 1")

    @property
    def milestones(self) -> tuple[int, ...]:
        """Images seen at each rung; the last is ``max_images`` (the final rung)."""
        out, k = [], 0
        while (m := round(self.grace * self.eta**k)) < self.max_images:
            out.append(m)
            k += 1
        return (*out, self.max_images)


@dataclass
class _Group:
    seeds: list[int]
    values: dict[int, dict[int, float]] = field(default_factory=dict)  # seed -> rung -> value
    failed: dict[int, int] = field(default_factory=dict)  # seed -> images seen when it failed
    reached: dict[int, int] = field(default_factory=dict)  # seed -> images seen at its last report
    state: str = "running"  # running | stopped | failed
    stop_rung: int | None = None
    gate: int = 0  # not judged below this rung (the rung of the last escalation)
    last: tuple | None = None  # (action, verdict, rung, n) of the last logged decision

    def at(self, rung: int) -> dict[int, float]:
        """Seed -> value at ``rung``, for the seeds that reached it."""
        return {s: v[rung] for s, v in self.values.items() if rung in v}

    def judgeable(self, rung: int) -> bool:
        live = [s for s in self.seeds if s not in self.failed]
        return rung >= self.gate and bool(live) and all(rung in self.values.get(s, {}) for s in live)


class Race:
    """The race's state (groups, seeds, values at rungs, verdicts) and its decisions; see the module doc."""

    def __init__(self, config: RaceConfig) -> None:
        self.config = config
        self.milestones = config.milestones
        self._groups: dict[str, _Group] = {}
        self.log: list[Decision] = []

    # ---- inputs
    def add_group(self, group: str) -> list[int]:
        """Register a configuration; returns the ``min_seeds`` seeds to start for it."""
        if group in self._groups:
            raise ValueError(f"group {group!r} is already in the race")
        seeds = list(self.config.seeds[: self.config.min_seeds])
        self._groups[group] = _Group(seeds=seeds, values={s: {} for s in seeds})
        return seeds

    def record(self, group: str, seed: int, images_seen: int, value: float) -> None:
        """An eval report. Non-finite values fail the seed; reports of stopped or failed groups are ignored."""
        g = self._seed_of(group, seed)
        if g.state != "running" or seed in g.failed:
            return
        if not math.isfinite(value):
            self.seed_failed(group, seed, images_seen)
            return
        if self.config.log_scale and value <= 0:
            raise ValueError(f"log_scale needs positive values, got {value} (use log_scale=False for this metric)")
        g.reached[seed] = max(g.reached.get(seed, 0), int(images_seen))
        for rung, milestone in enumerate(self.milestones):
            if images_seen >= milestone:
                g.values[seed].setdefault(rung, float(value))

    def seed_failed(self, group: str, seed: int, images_seen: int) -> None:
        """The trial of ``seed`` died for good at ``images_seen``: missing at every rung it had not reached."""
        self._seed_of(group, seed).failed.setdefault(seed, int(images_seen))

    # ---- decisions
    def decide(self) -> list[Decision]:
        """Judge every running group (see the module doc); returns the new decisions (also appended to
        ``log``): stop and add_seed must be acted on, continue is an account, logged when it changes."""
        out = []
        for name, g in self._groups.items():
            if g.state == "running" and all(s in g.failed for s in g.seeds):
                g.state = "failed"
                out.append(Decision(name, "fail", "failed", 0, 0, len(g.seeds), metric=self.config.metric))
        judged = [{d.group: d for d in self._judge(rung)} for rung in range(len(self.milestones))]
        verdicts: dict[str, Decision] = {}
        for with_pending in (False, True):  # the highest rung with a verdict; else why it waits
            for rung in reversed(range(len(judged))):
                for name, d in judged[rung].items():
                    usable = with_pending or d.verdict != "pending"
                    if usable and name not in verdicts and self._groups[name].judgeable(rung):
                        verdicts[name] = d
        grow: dict[str, Decision] = {}  # group -> the doubtful comparison its next seed is for
        for name, d in verdicts.items():
            if d.verdict == "doubt":
                for member in self._short_side(name, d.vs_ref.ref, d.rung):
                    mine = d if member == name else replace(judged[d.rung][member], for_group=name)
                    grow.setdefault(member, mine)
        for name, g in self._groups.items():
            if g.state != "running":
                continue
            if (d := verdicts.get(name)) is not None and d.verdict == "out":
                g.state, g.stop_rung = "stopped", d.rung
                out.append(replace(d, action="stop"))
            elif (d := grow.get(name)) is not None:
                seed = next(s for s in self.config.seeds if s not in g.seeds)
                g.seeds.append(seed)
                g.values[seed] = {}
                g.gate = max(g.gate, d.rung)
                out.append(replace(d, action="add_seed", seed=seed))
            elif (d := verdicts.get(name)) is not None and (d.action, d.verdict, d.rung, d.seeds) != g.last:
                g.last = (d.action, d.verdict, d.rung, d.seeds)
                out.append(d)
        self.log.extend(out)
        return out

    def _short_side(self, a: str, b: str, rung: int) -> list[str]:
        """Which of a doubtful pair get a seed: seeds are handed out in one order, so a group's seeds are a
        prefix of it and the pair shares the shorter prefix; that side grows (both when equal) up to
        ``max_seeds``. Nobody grows while either has a seed on its way to ``rung``: wait for it."""
        pair = [(n, self._groups[n]) for n in (a, b)]
        if any(rung not in g.values[s] and s not in g.failed for _, g in pair for s in g.seeds):
            return []
        fewest = min(len(g.seeds) for _, g in pair)
        return [n for n, g in pair if len(g.seeds) == fewest < self.config.max_seeds and g.state == "running"]

    def _judge(self, rung: int) -> list[Decision]:
        """Decisions (action ``continue``) for every group with values at ``rung``, judged on this rung alone."""
        cfg = self.config
        alive = [
            n for n, g in self._groups.items() if g.state != "failed" and (g.stop_rung is None or g.stop_rung >= rung)
        ]
        cut = 1 if rung == len(self.milestones) - 1 else math.ceil(len(alive) / cfg.eta)
        sign = 1.0 if cfg.mode == "min" else -1.0
        at = {n: v for n in alive if (v := self._groups[n].at(rung))}
        est = {n: estimate(list(v.values()), cfg.confidence) for n, v in at.items()}
        ranked = sorted(at, key=lambda n: (sign * est[n].mean, -est[n].n, n))
        common = dict(
            rung=rung, images=self.milestones[rung], ranked=len(ranked), cut=cut, metric=cfg.metric,
            confidence=cfg.confidence, max_seeds=cfg.max_seeds,
        )  # fmt: skip
        if len(ranked) <= cut:
            return [
                Decision(n, "continue", "pending", seeds=len(self._groups[n].seeds), needed=cut + 1, **common)
                for n in ranked
            ]
        scaled = {n: {s: self._scale(v) for s, v in at[n].items()} for n in ranked}
        noise: Noise | None = pooled_noise(scaled) if cfg.pooled else None
        refs = {n: ranked[cut - 1] if i >= cut else ranked[cut] for i, n in enumerate(ranked)}
        pairs = sorted({tuple(sorted((n, r))) for n, r in refs.items()})
        tests = {pair: paired(scaled[pair[0]], scaled[pair[1]], noise) for pair in pairs}
        if cfg.pooled and noise is None:  # no residual degrees of freedom: nothing is significant
            tests = {pair: replace(t, p=1.0) for pair, t in tests.items()}
        p_adj, steps = holm([tests[pair].p for pair in pairs])
        alpha, out = 1 - cfg.confidence, []
        for i, n in enumerate(ranked):
            k = pairs.index(tuple(sorted((n, refs[n]))))
            test = tests[pairs[k]]
            if n != pairs[k][0]:
                test = replace(test, diff=None if test.diff is None else -test.diff)
            vs_ref = Comparison.of(refs[n], test, 1 - alpha / (len(pairs) - steps[k]), p_adj[k], cfg.log_scale)
            lead = paired(scaled[n], scaled[ranked[0]], noise)
            vs_leader = Comparison.of(ranked[0], lead, cfg.confidence, lead.p, cfg.log_scale) if i else None
            below, worse = i >= cut, test.diff is not None and sign * test.diff > 0
            verdict = "doubt"
            if p_adj[k] <= alpha and below == worse:
                verdict = "out" if below else "in"
            elif test.n < cfg.max_seeds and not resolvable(test, cfg.max_seeds, vs_ref.level, cfg.pooled):
                verdict = "unresolved"
            elif rung < len(self.milestones) - 1 and self._too_late(n, rung):
                verdict = "deferred"
            out.append(
                Decision(
                    n, "continue", verdict, seeds=len(self._groups[n].seeds), rank=i + 1, estimate=est[n],
                    vs_ref=vs_ref, vs_leader=vs_leader, **common,
                )
            )  # fmt: skip
        return out

    def _too_late(self, group: str, rung: int) -> bool:
        """A seed added now reaches ``rung`` after ``milestone`` more images, when the group's other seeds have
        gone that much further: if they will have finished by then, a stop at this rung saves nothing."""
        g = self._groups[group]
        progress = min(g.reached.get(s, 0) for s in g.seeds if s not in g.failed)
        return progress + self.milestones[rung] >= self.config.max_images

    def _scale(self, value: float) -> float:
        return math.log(value) if self.config.log_scale else value

    # ---- queries
    def seeds(self, group: str) -> list[int]:
        """Seeds handed out to ``group``, in order (a resumed driver starts any without a trial)."""
        return list(self._groups[group].seeds)

    def active(self, group: str) -> bool:
        """Whether ``group`` is still in the race (its trials should run)."""
        return self._groups[group].state == "running"

    def failed(self, group: str, seed: int) -> bool:
        """Whether ``seed`` of ``group`` failed (missing at every rung it had not reached)."""
        return seed in self._groups[group].failed

    def leader(self) -> str | None:
        """Best mean at the highest rung any group still in the race has reached (the pick rule)."""
        for rung in reversed(range(len(self.milestones))):
            if best := self._best(rung):
                return best
        return None

    def pick(self) -> str | None:
        """The race's answer: best mean at the final rung among groups not failed or stopped before it."""
        return self._best(len(self.milestones) - 1)

    def _best(self, rung: int) -> str | None:
        sign = 1.0 if self.config.mode == "min" else -1.0
        means = {
            n: (sign * math.fsum(v.values()) / len(v), -len(v), n)
            for n, g in self._groups.items()
            if g.state == "running" and (v := g.at(rung))
        }
        return min(means, key=means.get, default=None)

    def status(self, group: str) -> str:
        """leader | continued | stopped at rung k | failed, with ``escalated to n seeds`` when it grew."""
        g = self._groups[group]
        if g.state == "failed":
            return "failed"
        if g.state == "stopped":
            text = f"stopped at rung {g.stop_rung} ({self.milestones[g.stop_rung]:,} images)"
        else:
            text = "leader" if self.leader() == group else "continued"
        if len(g.seeds) > self.config.min_seeds:
            text += f", escalated to {len(g.seeds)} seeds"
        return text

    def _seed_of(self, group: str, seed: int) -> _Group:
        g = self._groups.get(group)
        if g is None or seed not in g.seeds:
            raise KeyError(f"seed {seed} of group {group!r} was not handed out by the race")
        return g

    # ---- persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-able state: config, groups and the decision log; :meth:`from_dict` restores it exactly."""
        groups = {
            n: {
                "seeds": g.seeds,
                "values": {str(s): {str(r): v for r, v in vals.items()} for s, vals in g.values.items()},
                "failed": {str(s): i for s, i in g.failed.items()},
                "reached": {str(s): i for s, i in g.reached.items()},
                "state": g.state,
                "stop_rung": g.stop_rung,
                "gate": g.gate,
                "last": list(g.last) if g.last else None,
            }
            for n, g in self._groups.items()
        }
        return {"config": asdict(self.config), "groups": groups, "log": [asdict(d) for d in self.log]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Race:
        race = cls(RaceConfig(**{**d["config"], "seeds": tuple(d["config"]["seeds"])}))
        for n, g in d["groups"].items():
            race._groups[n] = _Group(
                seeds=[int(s) for s in g["seeds"]],
                values={int(s): {int(r): float(v) for r, v in vals.items()} for s, vals in g["values"].items()},
                failed={int(s): int(i) for s, i in g["failed"].items()},
                reached={int(s): int(i) for s, i in g["reached"].items()},
                state=g["state"],
                stop_rung=g["stop_rung"],
                gate=int(g["gate"]),
                last=tuple(g["last"]) if g["last"] else None,
            )
        race.log = [Decision.from_dict(x) for x in d["log"]]
        return race
