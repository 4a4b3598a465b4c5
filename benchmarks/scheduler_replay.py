"""Replay recorded learning curves through the race, per-trial ASHA and the full grid (no Ray).

    python benchmarks/scheduler_replay.py --curves benchmarks/data/synthetic_curves.csv --repeats 200
    python benchmarks/scheduler_replay.py --curves study.csv --eta 3 --json replay.json

The CSV has one row per eval: ``group``, ``seed``, ``images_seen``, ``fid`` (other columns are ignored). The
study length is the largest ``images_seen``; a seed whose rows stop before it (or that reports a non-finite
FID) is a run that failed there. The *truth* is each group's mean final FID over all its seeds that
finished; the true best is the lowest.

Each repeat draws a seed order (the order in which seeds are handed out: the first ``min_seeds`` start,
escalations take the next) and a group order, then plays the study on a clock: trials start from a queue
(groups in order, each group's seeds together; a race escalation goes to the front) into ``--concurrency``
slots, and every running trial reports its next eval on each tick (all evals take one tick). After a tick's
reports the policy decides; stopped trials leave before the next tick, so compute counts every trial up to
its last report (Tune's "stop at the next report" is the same up to at most one eval of a stopped group's
other trials). Policies:

- ``full_grid_min_seeds`` / ``full_grid_max_seeds``: every group on its first ``min_seeds`` / ``max_seeds``
  seeds to the end; pick = best mean final FID.
- ``asha``: Ray's asynchronous successive halving (``ASHAScheduler``, one bracket, ``stop_last_trials=False``,
  rungs ``grace * eta**k``), per (group, seed) trial, ``min_seeds`` seeds per group; a trial reaching a rung
  continues if it is not below the ``1 - 1/eta`` percentile of the values recorded there before it.
  Pick = best mean final FID over the group's trials that finished.
- ``race``: :class:`raydrift.orchestration.race.Race` with the same grace, eta and seeds; pick = ``Race.pick``.

Reported per policy: compute (images seen, summed over trials) as a fraction of ``full_grid_max_seeds``'s,
the probability that the pick is the true best, the mean regret (true mean FID of the pick minus the best's),
and the mean seeds per group.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from raydrift.orchestration.race import Race, RaceConfig

MIN_SEEDS = 2
MAX_SEEDS = 8
ETA = 2.0
GRACE = 48_000  # images at the first eval after step 150 at 320 images per step
CONFIDENCE = 0.95
CONCURRENCY = 8
POLICIES = ("full_grid_min_seeds", "full_grid_max_seeds", "asha", "race")

Trial = tuple[str, int]


@dataclass(frozen=True)
class Curves:
    """``runs[(group, seed)]``: its evals ``(images_seen, fid)`` in order, ``fid`` None for a failed report."""

    runs: dict[Trial, list[tuple[int, float | None]]]
    groups: list[str]
    seeds: list[int]
    max_images: int

    def final(self, group: str, seed: int) -> float | None:
        rows = self.runs.get((group, seed), [])
        return rows[-1][1] if rows and rows[-1][0] >= self.max_images else None

    def truth(self) -> dict[str, float]:
        """Each group's mean final FID over its finished seeds (groups with none are left out)."""
        out = {}
        for g in self.groups:
            finals = [f for s in self.seeds if (f := self.final(g, s)) is not None]
            if finals:
                out[g] = math.fsum(finals) / len(finals)
        return out


def load_curves(path: str) -> Curves:
    """Read the CSV; rows after a non-finite FID are dropped (the run failed at that report)."""
    raw: dict[Trial, list[tuple[int, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            raw.setdefault((row["group"], int(row["seed"])), []).append((int(row["images_seen"]), float(row["fid"])))
    runs: dict[Trial, list[tuple[int, float | None]]] = {}
    for trial, rows in raw.items():
        kept: list[tuple[int, float | None]] = []
        for images, fid in sorted(rows):
            kept.append((images, fid if math.isfinite(fid) else None))
            if not math.isfinite(fid):
                break
        runs[trial] = kept
    return Curves(
        runs=runs,
        groups=sorted({g for g, _ in runs}),
        seeds=sorted({s for _, s in runs}),
        max_images=max(i for rows in runs.values() for i, _ in rows),
    )


@dataclass(frozen=True)
class Report:
    trial: Trial
    images: int
    fid: float | None
    last: bool  # the trial has no more evals: finished, or failed if images < max_images


@dataclass
class Outcome:
    compute: int  # images seen, summed over trials
    pick: str | None
    seeds_per_group: float
    ticks: int  # wall clock, in eval intervals, at the replay's concurrency


class Asha:
    """Ray's ``_Bracket.on_result`` with ``stop_last_trials=False``, rewards ``-fid``; decides per report."""

    def __init__(self, grace: int, eta: float, max_images: int) -> None:
        self.eta = eta
        ks = range(int(math.log(max_images / grace) / math.log(eta) + 1e-9) + 1)
        self.rungs = [(grace * eta**k, {}) for k in reversed(ks)]

    def stop(self, trial: Trial, images: int, fid: float) -> bool:
        for milestone, recorded in self.rungs:
            if images >= milestone and trial in recorded:
                return False
            if images < milestone:
                continue
            cutoff = np.nanpercentile(list(recorded.values()), (1 - 1 / self.eta) * 100) if recorded else None
            recorded[trial] = -fid
            return cutoff is not None and -fid < cutoff
        return False


Policy = Callable[[list[Report]], tuple[set[Trial], set[str], list[Trial]]]


def play(curves: Curves, queue: Iterable[Trial], policy: Policy, concurrency: int) -> tuple[dict[Trial, int], int]:
    """Run the clock; ``policy(reports) -> (stopped trials, stopped groups, trials to start first)``.
    Returns each started trial's images seen at its last report, and the number of ticks."""
    waiting, running, spent, ticks = deque(queue), {}, {}, 0
    while waiting or running:
        ticks += 1
        while waiting and len(running) < concurrency:
            trial = waiting.popleft()
            running[trial], spent[trial] = 0, 0
        reports = []
        for trial, i in list(running.items()):
            rows = curves.runs.get(trial, [])
            images, fid = rows[i] if rows else (0, None)
            spent[trial] = images
            last = i + 1 >= len(rows)
            reports.append(Report(trial, images, fid, last))
            if last:
                del running[trial]
            else:
                running[trial] = i + 1
        stopped, stopped_groups, first = policy(reports)
        for trial in [t for t in running if t in stopped or t[0] in stopped_groups]:
            del running[trial]
        waiting = deque(first + [t for t in waiting if t[0] not in stopped_groups])
    return spent, ticks


def best_by_mean(values: dict[str, list[float]]) -> str | None:
    means = {g: math.fsum(v) / len(v) for g, v in values.items() if v}
    return min(means, key=lambda g: (means[g], g), default=None)


def full_grid(curves: Curves, groups: list[str], seeds: list[int], concurrency: int) -> Outcome:
    spent, ticks = play(curves, [(g, s) for g in groups for s in seeds], lambda _: (set(), set(), []), concurrency)
    finals = {g: [f for s in seeds if (f := curves.final(g, s)) is not None] for g in groups}
    return Outcome(sum(spent.values()), best_by_mean(finals), len(seeds), ticks)


def asha(curves: Curves, groups: list[str], seeds: list[int], args: argparse.Namespace) -> Outcome:
    bracket = Asha(args.grace, args.eta, curves.max_images)
    finals: dict[str, list[float]] = {g: [] for g in groups}

    def policy(reports: list[Report]) -> tuple[set[Trial], set[str], list[Trial]]:
        stopped = set()
        for r in reports:
            if r.fid is None:
                continue
            if bracket.stop(r.trial, r.images, r.fid):
                stopped.add(r.trial)
            if r.images >= curves.max_images:  # finished (a stop at its last report changes nothing)
                finals[r.trial[0]].append(r.fid)
        return stopped, set(), []

    spent, ticks = play(curves, [(g, s) for g in groups for s in seeds], policy, args.concurrency)
    return Outcome(sum(spent.values()), best_by_mean(finals), len(seeds), ticks)


def race(curves: Curves, groups: list[str], seeds: list[int], args: argparse.Namespace) -> tuple[Outcome, Race]:
    config = RaceConfig(
        max_images=curves.max_images,
        grace=args.grace,
        eta=args.eta,
        min_seeds=args.min_seeds,
        max_seeds=args.max_seeds,
        confidence=args.confidence,
        seeds=tuple(seeds),
        pooled=not args.per_pair,
        log_scale=not args.linear,
    )
    r = Race(config)
    queue = [(g, s) for g in groups for s in r.add_group(g)]

    def policy(reports: list[Report]) -> tuple[set[Trial], set[str], list[Trial]]:
        for rep in reports:
            (group, seed), failed = rep.trial, rep.fid is None or (rep.last and rep.images < curves.max_images)
            if rep.fid is not None:
                r.record(group, seed, rep.images, rep.fid)
            if failed:
                r.seed_failed(group, seed, rep.images)
        decisions = r.decide()
        stopped = {d.group for d in decisions if d.action == "stop"}
        return set(), stopped, [(d.group, d.seed) for d in decisions if d.action == "add_seed"]

    spent, ticks = play(curves, queue, policy, args.concurrency)
    return Outcome(sum(spent.values()), r.pick(), len(spent) / len(groups), ticks), r


def replay(curves: Curves, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """All policies over ``args.repeats`` random seed and group orders; the summary per policy."""
    if args.max_seeds > len(curves.seeds):
        raise SystemExit(f"--max-seeds {args.max_seeds} but the file has {len(curves.seeds)} seeds")
    truth = curves.truth()
    best = min(truth, key=truth.get)
    rng = random.Random(args.seed)
    results: dict[str, list[Outcome]] = {p: [] for p in POLICIES}
    for _ in range(args.repeats):
        seeds, groups = rng.sample(curves.seeds, len(curves.seeds)), rng.sample(curves.groups, len(curves.groups))
        results["full_grid_min_seeds"].append(full_grid(curves, groups, seeds[: args.min_seeds], args.concurrency))
        results["full_grid_max_seeds"].append(full_grid(curves, groups, seeds[: args.max_seeds], args.concurrency))
        results["asha"].append(asha(curves, groups, seeds[: args.min_seeds], args))
        results["race"].append(race(curves, groups, seeds, args)[0])
    full = results["full_grid_max_seeds"]
    full_compute, full_ticks = (sum(getattr(o, k) for o in full) / len(full) for k in ("compute", "ticks"))
    summary = {}
    for name, outcomes in results.items():
        regrets = [truth[o.pick] - truth[best] if o.pick in truth else math.inf for o in outcomes]
        summary[name] = {
            "compute_fraction": sum(o.compute for o in outcomes) / len(outcomes) / full_compute,
            "p_best": sum(o.pick == best for o in outcomes) / len(outcomes),
            "mean_regret": sum(regrets) / len(regrets),
            "seeds_per_group": sum(o.seeds_per_group for o in outcomes) / len(outcomes),
            "wall_fraction": sum(o.ticks for o in outcomes) / len(outcomes) / full_ticks,
        }
    return summary


def markdown(summary: dict[str, dict[str, float]]) -> str:
    lines = [
        "| policy | compute / full grid at max_seeds | p(best) | mean regret (FID) | seeds per group "
        "| wall clock / full grid at max_seeds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary.items():
        lines.append(
            f"| {name} | {s['compute_fraction']:.3f} | {s['p_best']:.3f} | {s['mean_regret']:.2f} "
            f"| {s['seeds_per_group']:.2f} | {s['wall_fraction']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--curves", required=True, help="CSV: group, seed, images_seen, fid")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--json", help="write {'policies': {name: {compute_fraction, p_best, mean_regret}}}")
    parser.add_argument("--min-seeds", type=int, default=MIN_SEEDS)
    parser.add_argument("--max-seeds", type=int, default=MAX_SEEDS)
    parser.add_argument("--eta", type=float, default=ETA)
    parser.add_argument("--grace", type=int, default=GRACE, help="images seen at the first rung")
    parser.add_argument("--confidence", type=float, default=CONFIDENCE)
    parser.add_argument("--per-pair", action="store_true", help="race: each pair's own variance, not pooled")
    parser.add_argument("--linear", action="store_true", help="race: test FID differences, not log ratios")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="trials running at once")
    parser.add_argument("--seed", type=int, default=0, help="seeds the random seed and group orders")
    args = parser.parse_args(argv)
    summary = replay(load_curves(args.curves), args)
    print(markdown(summary))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"policies": summary, "settings": {k: v for k, v in vars(args).items() if k != "json"}}, f)
    return summary


if __name__ == "__main__":
    main()
