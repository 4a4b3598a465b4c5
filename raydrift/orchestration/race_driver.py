"""A race run as trials: which (group, seed) trial to start next, which to stop, and the race's file.

Ray-free bookkeeping between the pure :class:`~.race.Race` and Ray Tune's scheduler/searcher pair
(:mod:`.race_tune`), which only translate Tune's hooks into these calls:

- :meth:`RaceDriver.next_trial` hands out the next seed to start: seeds handed out by the race wait in one
  queue (each group's first ``min_seeds`` in group order; an escalation's seed goes to the front, as in
  ``benchmarks/scheduler_replay.py``), at most ``max_concurrent`` trials live at once; ``FINISHED`` once
  nothing is queued or live. Seeds of stopped groups are never started.
- :meth:`RaceDriver.result` records an eval report and decides; :meth:`RaceDriver.should_stop` says whether a
  trial's group (or seed) is out. :meth:`RaceDriver.ended` takes a trial's end: an error, or an end before
  the last eval that the race did not ask for, is that seed's missing value.
- Every change is written to ``race/race.json`` in the experiment directory (atomically); a resumed study reloads
  it (:meth:`RaceDriver.load`), so the rung records, stopped groups and seed counts survive an interruption
  whatever Tune restores. Trials handed to Tune that Tune's own (periodic) experiment state lost are queued
  again, first.
- Each decision is one progress line (``Decision.describe``); a group that ends is reported once to
  ``on_group_end`` (the searcher tells HyperOpt the group's mean there).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .race import Race, RaceConfig
from .race_stats import Decision, estimate
from .storage import join, read_text, write_text

FINISHED = "FINISHED"
# <experiment>/race/race.json: not at the top, where Tune's resume copies every .json/.pkl into its staging
# directory and uploads it back at each experiment checkpoint (a race.json there reverts to its resumed state).
RACE_DIR, RACE_FILE = "race", "race.json"


@dataclass
class GroupInfo:
    """What the race's name of a configuration stands for: its sampled params (None until HyperOpt has
    suggested them), readable label and group id (as in each trial's meta.json)."""

    params: dict[str, Any] | None = None
    label: str = ""
    group_id: str = ""
    told: bool = False  # its end was reported to on_group_end


@dataclass
class RaceDriver:
    race: Race
    plan: dict[str, GroupInfo] = field(default_factory=dict)  # the configurations to race, in order
    max_concurrent: int = 1
    groups: dict[str, GroupInfo] = field(default_factory=dict)
    queue: list[tuple[str, int]] = field(default_factory=list)  # handed out, not started yet, in start order
    trials: dict[str, tuple[str, int]] = field(default_factory=dict)  # trial id -> (group, seed)
    live: set[str] = field(default_factory=set)
    done: set[str] = field(default_factory=set)
    say: Callable[[str], None] = print  # one progress line (the study's: progress.event('race', ...))
    write: Callable[[dict[str, Any]], None] | None = None  # persists to_dict() (race.json)
    on_group_end: Callable[[str, float | None], None] | None = None
    _seen: set[str] | None = None  # trial ids Tune re-added on a resume (None: not resumed)

    # ---- setup

    def add_groups(self, infos: dict[str, GroupInfo]) -> None:
        """Register configurations (in order); their first ``min_seeds`` seeds are queued."""
        for name, info in infos.items():
            self.groups[name] = info
            self.queue += [(name, s) for s in self.race.add_group(name)]
        self.save()

    def begin(self, saved: dict[str, Any] | None) -> None:
        """Tune starts: continue the ``saved`` race (race.json, a resume) or start the planned one."""
        if saved is not None:
            self.load(saved)
        elif not self.groups:
            self.add_groups(self.plan)

    # ---- trials

    def next_trial(self, trial_id: str) -> tuple[str, int] | str | None:
        """The (group, seed) a new trial should run, None for not now, FINISHED when the race is over."""
        self._reconcile()
        self.queue = [(g, s) for g, s in self.queue if self.race.active(g)]
        if len(self.live) >= self.max_concurrent:
            return None
        if not self.queue:
            return None if self.live else FINISHED
        group, seed = self.queue.pop(0)
        self.trials[trial_id] = (group, seed)
        self.live.add(trial_id)
        self.save()
        return group, seed

    def trial_added(self, trial_id: str, group: str, seed: int, finished: bool) -> None:
        """Tune knows this trial (one we handed out, or one restored on a resume)."""
        if self._seen is not None:
            self._seen.add(trial_id)
        self.trials.setdefault(trial_id, (group, seed))
        if finished:
            self.live.discard(trial_id)
            self.done.add(trial_id)
        elif trial_id not in self.done:
            self.live.add(trial_id)

    def who(self, trial_id: str) -> tuple[str, int] | None:
        return self.trials.get(trial_id)

    def find_group(self, params: dict[str, Any]) -> str | None:
        """The group whose params are ``params`` (a trial Tune restored that race.json does not list)."""
        return next((n for n, g in self.groups.items() if g.params == params), None)

    def result(self, trial_id: str, images_seen: int, value: float) -> list[Decision]:
        """An eval report of a trial: record it, decide, say and save what changed."""
        group, seed = self.trials[trial_id]
        self.race.record(group, seed, images_seen, value)
        return self._decide()

    def should_stop(self, trial_id: str) -> bool:
        """Whether the trial's group is out of the race (stopped or failed) or its seed failed."""
        who = self.trials.get(trial_id)
        if who is None:
            return False
        group, seed = who
        return not self.race.active(group) or self.race.failed(group, seed)

    def ended(self, trial_id: str, images_seen: int, error: bool) -> list[Decision]:
        """A trial ended (completed, stopped, errored). An error, or an end before the last eval that the race
        did not ask for, fails its seed: missing at every rung it had not reached."""
        self.live.discard(trial_id)
        self.done.add(trial_id)
        who = self.trials.get(trial_id)
        if who is None:
            return []
        group, seed = who
        early = images_seen < self.race.config.max_images
        if (error or early) and self.race.active(group) and not self.race.failed(group, seed):
            self.race.seed_failed(group, seed, images_seen)
            return self._decide()
        self._groups_ended()  # nothing the race judges changed: no new decision
        self.save()
        return []

    # ---- decisions and output

    def _decide(self) -> list[Decision]:
        decisions = self.race.decide()
        for d in decisions:
            if d.action == "add_seed":
                self.queue.insert(sum(1 for x in decisions[: decisions.index(d)] if x.action == "add_seed"),
                                  (d.group, d.seed))  # fmt: skip
            self.line(d.describe())
        self._groups_ended()
        self.save()
        return decisions

    def _groups_ended(self) -> None:
        """Report each group that ended (stopped, failed, or no seed left to run) once to ``on_group_end``."""
        if self.on_group_end is None:
            return
        busy = {g for g, _ in self.queue} | {self.trials[t][0] for t in self.live if t in self.trials}
        for name, info in self.groups.items():
            if info.told or info.params is None or (self.race.active(name) and name in busy):
                continue
            info.told = True
            self.on_group_end(name, group_value(self.race, name))

    def line(self, text: str) -> None:
        self.say(text)

    # ---- persistence

    def to_dict(self) -> dict[str, Any]:
        """race.json: the race's state, per group its params, status and rung statistics, and the trials."""
        state = self.race.to_dict()
        groups = {}
        for name, info in self.groups.items():
            groups[name] = {
                "params": info.params,
                "label": info.label,
                "group_id": info.group_id,
                "told": info.told,
                "status": self.race.status(name),
                "seeds": self.race.seeds(name),
                "rungs": rung_stats(state, name),
            }
        return {
            "metric": self.race.config.metric,
            "pick": self.race.pick(),
            "leader": self.race.leader(),
            "groups": groups,
            "race": state,
            "queue": [list(x) for x in self.queue],
            "trials": {t: list(x) for t, x in self.trials.items()},
            "done": sorted(self.done),
        }

    def save(self) -> None:
        if self.write is not None:
            self.write(self.to_dict())

    def load(self, data: dict[str, Any]) -> None:
        """Continue the race saved in ``data`` (a resume): Tune then re-adds its trials (:meth:`trial_added`)
        before it asks for a new one; handed-out trials it did not re-add are queued again, first."""
        self.race = Race.from_dict(data["race"])
        self.groups = {
            n: GroupInfo(g["params"], g["label"], g["group_id"], g["told"]) for n, g in data["groups"].items()
        }
        self.queue = [(g, int(s)) for g, s in data["queue"]]
        self.trials = {t: (g, int(s)) for t, (g, s) in data["trials"].items()}
        self.done, self.live, self._seen = set(data["done"]), set(), set()

    def _reconcile(self) -> None:
        if self._seen is None:
            return
        lost = [t for t in self.trials if t not in self._seen and t not in self.done]
        self.queue = [self.trials.pop(t) for t in lost] + self.queue
        self._seen = None
        if lost:
            self.line(f"{len(lost)} trial(s) handed out before the interruption are started again")


def rung_stats(state: dict[str, Any], group: str) -> list[dict[str, Any]]:
    """Per rung a group reached: images, seeds (n), mean and t half-width at the race's confidence."""
    config, g = state["config"], state["groups"][group]
    rungs: dict[int, list[float]] = {}
    for values in g["values"].values():
        for rung, v in values.items():
            rungs.setdefault(int(rung), []).append(v)
    milestones = RaceConfig(**{**config, "seeds": tuple(config["seeds"])}).milestones
    out = []
    for rung in sorted(rungs):
        est = estimate(rungs[rung], config["confidence"])
        out.append({"rung": rung, "images": milestones[rung], "n": est.n, "mean": est.mean, "ci": est.ci})
    return out


def group_value(race: Race, group: str) -> float | None:
    """A group's mean at the highest rung all its live seeds reached (else the highest with any value); None
    if it failed or has no value: what HyperOpt is told when the group ends."""
    state = race.to_dict()["groups"][group]
    if state["state"] == "failed":
        return None
    live = [s for s in state["values"] if s not in state["failed"]]
    rows = [state["values"][s] for s in live] or list(state["values"].values())
    rungs = set.intersection(*(set(r) for r in rows)) if rows else set()
    rungs = rungs or {r for row in rows for r in row}
    if not rungs:
        return None
    top = max(rungs, key=int)
    values = [row[top] for row in rows if top in row]
    return math.fsum(values) / len(values)


@dataclass(frozen=True)
class RaceFile:
    """``race.json`` in an experiment directory (a path or a URI); key order kept (it is the race's order)."""

    experiment_dir: str

    @property
    def directory(self) -> str:
        return join(self.experiment_dir, RACE_DIR)

    def __call__(self, data: dict[str, Any]) -> None:
        write_text(self.directory, RACE_FILE, json.dumps(data, indent=1))

    def read(self) -> dict[str, Any] | None:
        text = read_text(self.directory, RACE_FILE)
        return json.loads(text) if text else None


def race_summary(data: dict[str, Any]) -> dict[str, Any]:
    """From race.json: the pick and, per group (best first), its status, seeds, its metric at the last rung it
    reached, or the rung that stopped it (n, mean, t half-width), and its last decision's one-line account."""
    sign = 1.0 if data["race"]["config"]["mode"] == "min" else -1.0
    last: dict[str, str] = {}
    for d in data["race"]["log"]:
        last[d["group"]] = Decision.from_dict(d).describe()
    rows = []
    for name, g in data["groups"].items():
        stop_rung = data["race"]["groups"][name]["stop_rung"]  # a stopped group: the rung that judged it
        top = next((r for r in g["rungs"] if r["rung"] == stop_rung), g["rungs"][-1] if g["rungs"] else {})
        rows.append(
            {
                "group": name,
                "label": g["label"],
                "group_id": g["group_id"],
                "status": g["status"],
                "seeds": len(g["seeds"]),
                "rung": top.get("rung"),
                "images": top.get("images"),
                "n": top.get("n", 0),
                "mean": top.get("mean"),
                "ci": top.get("ci"),
                "decision": last.get(name, ""),
            }
        )
    rows.sort(key=lambda r: (r["rung"] is None, -(r["rung"] or 0), sign * (r["mean"] or 0.0), r["group"]))
    return {"metric": data["metric"], "pick": data["pick"], "groups": rows}
