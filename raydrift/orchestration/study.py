"""Study files: a Python module per study in ``search_spaces/``, loaded and validated before any trial runs.

A study file sets module-level names (only ``SPACE`` is required):

    PRESET = "digits"                        # base preset (``raydrift tune --preset`` overrides it)
    SPACE = {                                # dotted config keys -> Ray Tune domains or constants
        "drift.kernel": tune.grid_search(["laplace", "gaussian"]),
        "drift.temperatures[0]": tune.loguniform(0.005, 0.05),   # one item of a tuple field
    }
    FIXED = {"eval.num_samples": 1000}       # overrides for every trial, whatever the preset
    SEEDS = [0, 1]                           # the seed axis: every configuration runs once per seed (a race:
                                             #   the order it hands seeds out in, then the unused integers)
    METRIC, MODE = "eval/fid", "min"         # what ASHA and the search optimise
    SEARCH = {"algorithm": "grid"}           # or {"algorithm": "hyperopt", "num_samples": 16, "n_initial_points": 4}
    SCHEDULER = {"type": "race", "min_seeds": 2, "max_seeds": 8, "eta": 2, "grace_steps": 100}
                                             # race over configurations (raydrift.orchestration.race), or
                                             # {"type": "asha", "grace_steps": 100, "reduction_factor": 2}: per-trial
                                             # ASHA on METRIC over images seen (keys without "type" mean ASHA);
                                             # None = every trial runs to the end
    MAX_CONCURRENT = 2                       # trials at once
    TIME_BUDGET_S = None                     # stop starting/continuing trials after this many seconds
    TRIAL = {"num_workers": 1, "cpus_per_worker": 1, "gpus_per_worker": 0.25, "max_failures": 2}
    PRESETS = {"digits": {"train.steps": 600},    # overrides with this preset only, on top of the preset's
               "mnist": {"train.steps": 20000}}   #   STUDY_BUDGETS, FIXED and TRIAL (--set/--steps win over all
                                                  #   of these; a key SPACE sweeps cannot be --set)
    TIED = {"drift.n_pos": "drift.n_neg"}    # keys that take another SPACE key's sampled value

Problems (syntax errors, unknown names or config keys, values a key cannot take, unsupported domains)
raise :class:`StudyError` naming the file and line (:func:`raydrift.orchestration.study_file.load_study`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raydrift.config import Config, apply_overrides, get_preset, to_dict
from raydrift.config.presets import STUDY_BUDGETS

# A race's settings (raydrift.orchestration.race): seeds per group to start with and at most, reduction factor
# between rungs, the first rung in training steps, and the family-wise confidence of a rung's stops.
RACE_DEFAULTS = {"min_seeds": 2, "max_seeds": 8, "eta": 2.0, "grace_steps": 100, "confidence": 0.95}


class StudyError(ValueError):
    """A study file that cannot run; the message names the file and line."""


class OverrideError(StudyError):
    """A command-line override (``raydrift tune --set``/``--steps``) the study cannot take."""


@dataclass
class Study:
    path: Path
    name: str
    description: str
    preset: str
    space: dict[str, Any]
    fixed: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    metric: str = "eval/fid"
    mode: str = "min"
    search: dict[str, Any] = field(default_factory=lambda: {"algorithm": "grid"})
    scheduler: dict[str, Any] | None = field(default_factory=lambda: {"grace_steps": 100, "reduction_factor": 2})
    max_concurrent: int = 1
    time_budget_s: float | None = None
    trial: dict[str, Any] = field(default_factory=dict)
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    tied: dict[str, str] = field(default_factory=dict)
    cli: dict[str, Any] = field(default_factory=dict)  # `raydrift tune --set/--steps/...`: applied last

    @property
    def algorithm(self) -> str:
        return self.search.get("algorithm", "grid")

    @property
    def scheduler_type(self) -> str | None:
        """``race``, ``asha`` (also a SCHEDULER without "type"), or None (no early stopping)."""
        return None if self.scheduler is None else self.scheduler.get("type", "asha")

    def race_settings(self) -> dict[str, Any]:
        """The race's settings (defaults filled in) and ``seeds``: the order seeds are handed out in, SEEDS
        first, then the smallest unused integers, ``max_seeds`` of them."""
        out = RACE_DEFAULTS | {k: v for k, v in (self.scheduler or {}).items() if k != "type"}
        seeds = list(self.seeds[: out["max_seeds"]])
        extra = (s for s in range(10**6) if s not in self.seeds)
        out["seeds"] = seeds + [next(extra) for _ in range(out["max_seeds"] - len(seeds))]
        return out

    def base_overrides(self) -> dict[str, Any]:
        """The preset's study budget (``STUDY_BUDGETS``), FIXED, the TRIAL resources, the chosen preset's
        PRESETS entry, and the command line's overrides (each later one wins)."""
        out = dict(STUDY_BUDGETS.get(self.preset, {})) | dict(self.fixed)
        for key in ("num_workers", "cpus_per_worker", "gpus_per_worker", "use_gpu"):
            if key in self.trial:
                out[f"scaling.{key}"] = self.trial[key]
        return out | dict(self.presets.get(self.preset, {})) | dict(self.cli)

    def trial_overrides(self, params: dict[str, Any], seed: int) -> dict[str, Any]:
        """Base overrides + sampled ``params`` + tied keys + seed."""
        sampled = {k: plain(v) for k, v in params.items()}
        tied = {target: sampled[source] for target, source in self.tied.items()}
        return self.base_overrides() | sampled | tied | {"train.seed": seed}

    def trial_config(self, params: dict[str, Any], seed: int) -> Config:
        """The full config of one trial: preset + base overrides + sampled ``params`` + seed."""
        return apply_overrides(get_preset(self.preset), self.trial_overrides(params, seed))

    def base_config(self) -> Config:
        return apply_overrides(get_preset(self.preset), self.base_overrides())


def group_id(preset: str, params: dict[str, Any], fixed: dict[str, Any]) -> str:
    """Short stable hash of a configuration without its seed."""
    blob = json.dumps({"preset": preset, "params": plain(params), "fixed": plain(fixed)}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:8]


def group_label(params: dict[str, Any]) -> str:
    """Readable ``kernel=gaussian,temperatures=0.02/0.05/0.2`` from the sampled params."""
    parts = []
    for key in sorted(params):
        short = key.rsplit(".", 1)[-1]
        v = plain(params[key])
        text = "/".join(_fmt(x) for x in v) if isinstance(v, list) else _fmt(v)
        parts.append(f"{short}={text}")
    return ",".join(parts) or "base"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def plain(v: Any) -> Any:
    return json.loads(json.dumps(v))


def resolved(study: Study) -> dict[str, Any]:
    """JSON-able summary of the study, saved with the experiment."""
    return {
        "file": str(study.path.resolve()),
        "name": study.name,
        "preset": study.preset,
        "space": {k: repr(v) for k, v in study.space.items()},
        "fixed": plain(study.fixed),
        "cli": plain(study.cli),
        "seeds": study.seeds,
        "metric": study.metric,
        "mode": study.mode,
        "search": plain(study.search),
        "scheduler": plain(study.scheduler),
        "max_concurrent": study.max_concurrent,
        "time_budget_s": study.time_budget_s,
        "trial": plain(study.trial),
        "tied": study.tied,
        "base_config": to_dict(study.base_config()),
    }


def describe(study: Study, experiment_dir: str, short: bool = False) -> str:
    """What ``raydrift tune`` will run: the study, its trials and budget (``short``: without the space)."""
    from itertools import product

    from ray.tune.search.sample import Categorical

    grid_keys = [k for k, v in sorted(study.space.items()) if isinstance(v, dict) and "grid_search" in v]
    combos = list(product(*(study.space[k]["grid_search"] for k in grid_keys))) if grid_keys else [()]
    n = (
        len(combos) * len(study.seeds)
        if study.algorithm == "grid"
        else (int(study.search.get("num_samples", 8)) * len(study.seeds))
    )
    cfg = study.base_config()
    configs = len(combos) if study.algorithm == "grid" else int(study.search.get("num_samples", 8))
    if study.scheduler_type == "race":
        r = study.race_settings()
        seeds = str(r["min_seeds"]) if r["min_seeds"] == r["max_seeds"] else f"{r['min_seeds']}-{r['max_seeds']}"
        trials = f"{configs} configurations x {seeds} seeds ({study.algorithm}; seeds in order {r['seeds']})"
        early = f"race (eta {r['eta']:g}, first rung at step {r['grace_steps']}, {100 * r['confidence']:g}% Holm)"
    else:
        trials = f"{n} trials ({study.algorithm}; seeds {study.seeds})"
        grace = (study.scheduler or {}).get("grace_steps", 100)
        early = f"ASHA grace {grace} steps" if study.scheduler else "no early stopping"
    lines = [
        f"study {study.name} ({study.path}): {study.description.splitlines()[0] if study.description else ''}",
        f"  preset {study.preset}, {trials}, {cfg.train.steps} steps each, eval every {cfg.eval.every}, {early}"
        f", {study.max_concurrent} at once, metric {study.metric} ({study.mode})",
        f"  each trial: {_resources(cfg)}",
        f"  experiment dir: {experiment_dir}",
    ]
    if not short:
        lines.append("  search space:")
        for k, v in sorted(study.space.items()):
            desc = v["grid_search"] if isinstance(v, dict) else v.categories if isinstance(v, Categorical) else v
            lines.append(f"    {k}: {desc}")
        if study.algorithm == "grid":
            lines.append("  configurations:")
            for combo in combos:
                seeds = "raced" if study.scheduler_type == "race" else study.seeds
                lines.append(f"    {group_label(dict(zip(grid_keys, combo)))}  x seeds {seeds}")
    return "\n".join(lines)


def _resources(cfg: Config) -> str:
    """What one trial asks the cluster for, e.g. ``1 worker x (1 CPU + 0.25 GPU): 4 trials per GPU``."""
    s = cfg.scaling
    per = f"{s.cpus_per_worker:g} CPU" + (f" + {s.gpus_per_worker:g} GPU" if s.use_gpu else "")
    text = f"{s.num_workers} worker{'s' if s.num_workers > 1 else ''} x ({per})"
    if s.use_gpu and s.num_workers * s.gpus_per_worker < 1:
        text += f": {int(1 / (s.num_workers * s.gpus_per_worker))} trials per GPU"
    return text
