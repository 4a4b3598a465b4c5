"""What a study prints while it runs: raydrift's own progress, one line per trial event and per evaluation,
and now and then a table of the groups with their best metric so far, instead of Ray's result tables.

A :class:`StudyProgress` is a Ray Tune callback writing through :func:`emit`, whose destination the CLI
sets with :func:`set_sink` (the terminal, while Ray's own output goes to a log file; ``raydrift tune
--verbose`` shows both). The callback is pickled with the experiment (Tune saves its run config for
``--resume``), so it holds no file or function of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ray.tune import Callback

from .study import Study, group_label

TABLE_EVERY_S = 180.0  # seconds between two group tables (only when something changed)
_SINK: list[Callable[[str], None]] = [print]


_T0 = [time.monotonic()]  # the study clock every progress line shows


def set_sink(log: Callable[[str], None]) -> None:
    """Where :func:`emit` writes (``print`` until set); the study clock starts now."""
    _SINK[0] = log
    _T0[0] = time.monotonic()


def emit(line: str) -> None:
    """One line of study progress."""
    _SINK[0](line)


def event(kind: str, text: str) -> None:
    """``[mm:ss] kind    text`` on the study clock (the race's decisions use it too)."""
    elapsed = int(time.monotonic() - _T0[0])
    emit(f"[{elapsed // 60:3d}:{elapsed % 60:02d}] {kind:7s} {text}")


class StudyProgress(Callback):
    """Tune callback: ``start`` / ``eval`` / ``done`` / ``stopped`` / ``failed`` lines and group tables."""

    def __init__(self, study: Study, table_every_s: float = TABLE_EVERY_S):
        self.study, self.table_every_s = study, table_every_s
        self.t0 = time.monotonic()
        self.last_table = self.t0
        self.changed = False
        self.metric = study.metric
        self.best: dict[str, dict[int, float]] = {}  # group label -> seed -> best metric so far
        self.state: dict[str, dict[int, str]] = {}  # group label -> seed -> running | done | stopped | failed
        self.last: dict[str, dict[str, Any]] = {}  # trial id -> its last result

    # ---- Tune's hooks

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        label, seed = self._who(trial)
        self.state.setdefault(label, {})[seed] = "running"
        running = sum(t.status == "RUNNING" for t in trials)
        pending = sum(t.status == "PENDING" for t in trials)
        self._line("start", f"{label} seed {seed}", f"({running} running, {pending} waiting)")

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        self.last[trial.trial_id] = result
        value = result.get(self.metric)
        if value is None:
            return
        label, seed = self._who(trial)
        best = self.best.setdefault(label, {})
        better = min if self.study.mode == "min" else max
        best[seed] = better(best.get(seed, value), value)
        self.changed = True
        self._line("eval", f"{label} seed {seed}", f"step {result.get('step')}  {_short(self.metric)} {value:.4g}")
        self._table_if_due(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        label, seed = self._who(trial)
        last = self.last.get(trial.trial_id, {})
        step = last.get("step")
        planned = self.study.trial_config(self._params(trial), seed).train.steps
        value = last.get(self.metric)
        tail = f"  {_short(self.metric)} {value:.4g}" if value is not None else ""
        if step is not None and step < planned:
            self.state.setdefault(label, {})[seed] = "stopped"
            self._line("stopped", f"{label} seed {seed}", f"at step {step} of {planned} by the scheduler{tail}")
        else:
            self.state.setdefault(label, {})[seed] = "done"
            self._line("done", f"{label} seed {seed}", f"step {step}{tail}")
        self.changed = True

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        label, seed = self._who(trial)
        self.state.setdefault(label, {})[seed] = "failed"
        self.changed = True
        self._line("failed", f"{label} seed {seed}", _error_line(trial))

    def on_experiment_end(self, trials: list, **info) -> None:
        if self.changed:
            self._table(trials)

    # ---- output

    def _line(self, kind: str, who: str, what: str) -> None:
        event(kind, f"{who}  {what}")

    def _table_if_due(self, trials: list) -> None:
        if time.monotonic() - self.last_table >= self.table_every_s and self.changed:
            self._table(trials)

    def _table(self, trials: list) -> None:
        self.last_table, self.changed = time.monotonic(), False
        counts = {s: sum(t.status == s for t in trials) for s in ("RUNNING", "PENDING", "TERMINATED", "ERROR")}
        emit(
            f"      groups: {counts['RUNNING']} trials running, {counts['PENDING']} waiting, "
            f"{counts['TERMINATED']} ended, {counts['ERROR']} failed{_cluster_usage()}"
        )
        width = max((len(label) for label in self.state), default=5)
        for label in sorted(self.state, key=lambda g: self._rank_key(g)):
            seeds = self.state[label]
            best = self.best.get(label, {})
            pick = min if self.study.mode == "min" else max
            value = f"best {_short(self.metric)} {pick(best.values()):.4g}" if best else "no eval yet"
            states = ", ".join(f"{n} {s}" for s, n in _count(seeds.values()).items())
            emit(f"      {label:{width}s}  {value:22s} seeds: {states}")

    def _rank_key(self, label: str) -> tuple:
        best = self.best.get(label)
        if not best:
            return (1, 0.0, label)
        value = min(best.values()) if self.study.mode == "min" else -max(best.values())
        return (0, value, label)

    # ---- helpers

    def _params(self, trial) -> dict[str, Any]:
        return {k: trial.config.get(k) for k in self.study.space}

    def _who(self, trial) -> tuple[str, int]:
        seed = trial.config.get("train.seed")
        if seed is None:
            seed = self.study.seeds[trial.config.get("__trial_index__", 0)]
        return group_label(self._params(trial)), int(seed)


def _short(metric: str) -> str:
    return {"eval/fid": "FID", "eval/is": "IS"}.get(metric, metric)


def _count(states) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in states:
        out[s] = out.get(s, 0) + 1
    return out


def _error_line(trial) -> str:
    error = trial.get_error()
    return error_text(error) if error is not None else "failed"


def error_text(err: Any) -> str:
    """The reason in a trial's error (our ``TrialFailed`` message, else the last error line)."""
    text = str(err).strip()
    for line in reversed(text.splitlines()):
        if "TrialFailed" in line or "Error" in line:
            return line.split("TrialFailed: ", 1)[-1].strip()[:300]
    return text.splitlines()[-1][:300] if text else type(err).__name__


def _cluster_usage() -> str:
    """``; cluster CPUs 2/2 in use`` from Ray's own accounting (Train workers included)."""
    import ray

    try:
        total, free = ray.cluster_resources(), ray.available_resources()
    except Exception:  # the cluster is shutting down
        return ""
    cpus = total.get("CPU", 0)
    used = cpus - free.get("CPU", 0)
    gpus = total.get("GPU", 0)
    gpu = f", GPUs {gpus - free.get('GPU', 0):g}/{gpus:g}" if gpus else ""
    return f"; cluster CPUs {used:g}/{cpus:g} in use{gpu}"
