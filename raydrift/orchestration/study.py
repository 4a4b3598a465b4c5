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
raise :class:`StudyError` naming the file and line.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import json
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raydrift.config import Config, ConfigError, apply_overrides, flat_keys, get_preset, split_index, to_dict
from raydrift.config.presets import PRESETS as PRESET_FUNCTIONS
from raydrift.config.presets import STUDY_BUDGETS

# A race's settings (raydrift.orchestration.race): seeds per group to start with and at most, reduction factor
# between rungs, the first rung in training steps, and the family-wise confidence of a rung's stops.
RACE_DEFAULTS = {"min_seeds": 2, "max_seeds": 8, "eta": 2.0, "grace_steps": 100, "confidence": 0.95}

ALLOWED_NAMES = {
    "PRESET",
    "SPACE",
    "FIXED",
    "SEEDS",
    "METRIC",
    "MODE",
    "SEARCH",
    "SCHEDULER",
    "MAX_CONCURRENT",
    "TIME_BUDGET_S",
    "TRIAL",
    "PRESETS",
    "TIED",
}
SEARCH_ALGORITHMS = ("grid", "hyperopt")
TRIAL_KEYS = {"num_workers", "cpus_per_worker", "gpus_per_worker", "use_gpu", "max_failures"}
SCHEDULER_KEYS = {"asha": {"grace_steps", "reduction_factor"}, "race": set(RACE_DEFAULTS)}
METRICS = ("eval/fid", "eval/is", "eval/diversity", "train/loss")


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
        sampled = {k: _plain(v) for k, v in params.items()}
        tied = {target: sampled[source] for target, source in self.tied.items()}
        return self.base_overrides() | sampled | tied | {"train.seed": seed}

    def trial_config(self, params: dict[str, Any], seed: int) -> Config:
        """The full config of one trial: preset + base overrides + sampled ``params`` + seed."""
        return apply_overrides(get_preset(self.preset), self.trial_overrides(params, seed))

    def base_config(self) -> Config:
        return apply_overrides(get_preset(self.preset), self.base_overrides())


def group_id(preset: str, params: dict[str, Any], fixed: dict[str, Any]) -> str:
    """Short stable hash of a configuration without its seed."""
    blob = json.dumps({"preset": preset, "params": _plain(params), "fixed": _plain(fixed)}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:8]


def group_label(params: dict[str, Any]) -> str:
    """Readable ``kernel=gaussian,temperatures=0.02/0.05/0.2`` from the sampled params."""
    parts = []
    for key in sorted(params):
        short = key.rsplit(".", 1)[-1]
        v = _plain(params[key])
        text = "/".join(_fmt(x) for x in v) if isinstance(v, list) else _fmt(v)
        parts.append(f"{short}={text}")
    return ",".join(parts) or "base"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _plain(v: Any) -> Any:
    return json.loads(json.dumps(v))


# ---------------------------------------------------------------- loading and validation


def load_study(path: str | Path, *, preset: str | None = None, seeds: list[int] | None = None) -> Study:
    """Load and validate a study file; ``preset``/``seeds`` override the file's."""
    path = Path(path)
    if not path.is_file():
        hint = sorted(p.name for p in path.parent.glob("*.py")) if path.parent.is_dir() else []
        raise StudyError(f"{path}: no such study file" + (f" (studies there: {', '.join(hint)})" if hint else ""))
    source = path.read_text()
    try:
        tree = ast.parse(source, filename=str(path))
        code = compile(tree, str(path), "exec")
    except SyntaxError as err:
        raise StudyError(f"{path}:{err.lineno}: syntax error: {err.msg}") from None
    namespace: dict[str, Any] = {"__file__": str(path), "__name__": f"raydrift_study_{path.stem}"}
    try:
        exec(code, namespace)
    except Exception as err:
        line = _study_line(err, path)
        raise StudyError(f"{path}:{line}: {type(err).__name__}: {err}") from None

    names = {k for k in namespace if k.isupper() and not k.startswith("_")}
    for name in sorted(names - ALLOWED_NAMES):
        close = difflib.get_close_matches(name, sorted(ALLOWED_NAMES), n=1)
        raise StudyError(
            f"{path}:{_line_of_name(tree, name)}: unknown study setting {name}"
            + (f" (did you mean {close[0]}?)" if close else "")
            + f"; allowed: {', '.join(sorted(ALLOWED_NAMES))}"
        )
    if "SPACE" not in namespace:
        raise StudyError(f"{path}: a study needs SPACE, a dict of dotted config keys to Ray Tune domains")

    def get(name, default):
        return namespace.get(name, default)

    study = Study(
        path=path,
        name=path.stem,
        description=(ast.get_docstring(tree) or "").strip(),
        preset=preset or get("PRESET", "digits"),
        space=dict(get("SPACE", {})),
        fixed=dict(get("FIXED", {})),
        seeds=list(seeds if seeds is not None else get("SEEDS", [0])),
        metric=get("METRIC", "eval/fid"),
        mode=get("MODE", "min"),
        search=dict(get("SEARCH", {"algorithm": "grid"})),
        scheduler=get("SCHEDULER", {"grace_steps": 100, "reduction_factor": 2}),
        max_concurrent=get("MAX_CONCURRENT", 1),
        time_budget_s=get("TIME_BUDGET_S", None),
        trial=dict(get("TRIAL", {})),
        presets=dict(get("PRESETS", {})),
        tied=dict(get("TIED", {})),
    )
    validate(study, tree)
    return study


def validate(study: Study, tree: ast.AST | None = None) -> None:
    from ray.tune.search.sample import Categorical, Domain

    path = study.path
    tree = tree or ast.parse(path.read_text())

    def fail(msg: str, needle: Any = None, name: str | None = None) -> None:
        line = _line_of_string(tree, needle) if needle is not None else _line_of_name(tree, name) if name else "?"
        raise StudyError(f"{path}:{line}: {msg}")

    if study.preset not in PRESET_FUNCTIONS:
        fail(f"unknown preset {study.preset!r}; choose one of {', '.join(PRESET_FUNCTIONS)}", name="PRESET")
    if not isinstance(study.space, dict) or not study.space:
        fail("SPACE must be a non-empty dict of dotted config keys to Ray Tune domains", name="SPACE")
    if not study.seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in study.seeds):
        fail(f"SEEDS must be a non-empty list of integers, got {study.seeds!r}", name="SEEDS")
    if len(set(study.seeds)) != len(study.seeds):
        fail(f"SEEDS has duplicates: {study.seeds}", name="SEEDS")
    if study.metric not in METRICS:
        fail(f"METRIC must be one of {', '.join(METRICS)}, got {study.metric!r}", name="METRIC")
    if study.mode not in ("min", "max"):
        fail(f"MODE must be 'min' or 'max', got {study.mode!r}", name="MODE")
    if study.algorithm not in SEARCH_ALGORITHMS:
        fail(f"SEARCH algorithm must be one of {', '.join(SEARCH_ALGORITHMS)}", needle=study.algorithm)
    budget = study.time_budget_s
    if budget is not None and (not isinstance(budget, (int, float)) or isinstance(budget, bool) or budget <= 0):
        fail(f"TIME_BUDGET_S must be a number of seconds > 0 or None, got {budget!r}", name="TIME_BUDGET_S")
    if not isinstance(study.max_concurrent, int) or study.max_concurrent < 1:
        fail(f"MAX_CONCURRENT must be an integer >= 1, got {study.max_concurrent!r}", name="MAX_CONCURRENT")
    for key in set(study.trial) - TRIAL_KEYS:
        fail(f"unknown TRIAL setting {key!r}; allowed: {', '.join(sorted(TRIAL_KEYS))}", needle=key)
    _validate_scheduler(study, fail)
    for target, source in study.tied.items():
        if source not in study.space:
            fail(f"TIED[{target!r}] = {source!r} must name a SPACE key", needle=source)
        if split_index(target)[0] not in flat_keys():
            fail(_unknown_key(target, flat_keys()), needle=target)
    for preset_name in study.presets:
        if preset_name not in PRESET_FUNCTIONS:
            fail(f"PRESETS has unknown preset {preset_name!r}", needle=preset_name)

    leaves = flat_keys()
    for key, value in study.cli.items():  # the command line's: blame the command line, not the study file
        if split_index(key)[0] not in leaves:
            raise OverrideError(f"--set {key}={value}: {_unknown_key(key, leaves)}")
        swept = [k for k in [*study.space, *study.tied] if split_index(k)[0] == split_index(key)[0]]
        if swept:
            raise OverrideError(
                f"--set {key}={value}: {path} sweeps {swept[0]} (line {_line_of_string(tree, swept[0])}), and --set "
                "cannot fix a swept key; edit the study's SPACE (or copy the study file and change it there)"
            )
    try:
        apply_overrides(get_preset(study.preset), dict(study.cli))
    except ConfigError as err:
        raise OverrideError(f"--set: {err}") from None
    for key in list(study.fixed) + [k for extra in study.presets.values() for k in extra]:
        if split_index(key)[0] not in leaves:
            fail(_unknown_key(key, leaves), needle=key)
    try:
        base = study.base_config()
    except ConfigError as err:
        fail(f"FIXED/TRIAL/PRESETS/--set: {err}", name="FIXED")

    for key, domain in study.space.items():
        if split_index(key)[0] not in leaves:
            fail(_unknown_key(key, leaves), needle=key)
        if key == "train.seed":
            fail("seeds are their own axis: use SEEDS (or --seeds), not SPACE['train.seed']", needle=key)
        grid = isinstance(domain, dict) and set(domain) == {"grid_search"}
        if grid:
            values = list(domain["grid_search"])
            if study.algorithm == "hyperopt":
                fail(f"{key}: grid_search cannot be used with hyperopt; use tune.choice", needle=key)
        elif isinstance(domain, Categorical):
            values = list(domain.categories)
        elif isinstance(domain, Domain):
            try:
                values = [domain.lower, domain.upper] if hasattr(domain, "lower") else [domain.sample()]
            except Exception as err:
                fail(f"{key}: bad domain {domain!r}: {err}", needle=key)
        elif isinstance(domain, dict) or callable(domain):
            fail(
                f"{key}: unsupported value {domain!r}; use tune.grid_search/choice/uniform/... or a constant",
                needle=key,
            )
        else:
            values = [domain]
        if not values:
            fail(f"{key}: empty list of values", needle=key)
        tied_to = [t for t, src in study.tied.items() if src == key]
        for value in values:
            v = _plain(value) if not isinstance(value, str) else value
            try:
                apply_overrides(base, {key: v} | {t: v for t in tied_to})
            except ConfigError as err:
                fail(f"{key}: value {value!r} is not accepted: {err}", needle=key)
            except TypeError:
                fail(f"{key}: value {value!r} is not JSON-like (numbers, strings, lists)", needle=key)
    if study.algorithm == "grid" and any(
        isinstance(d, Domain) and not isinstance(d, Categorical) for d in study.space.values()
    ):
        fail(
            "continuous domains need SEARCH = {'algorithm': 'hyperopt', ...} (grid search samples them once)",
            name="SEARCH",
        )
    del base


SCHEDULER_HINTS = {"grace": "grace_steps", "reduction_factor": "eta", "eta": "reduction_factor", "seeds": "min_seeds"}


def _validate_scheduler(study: Study, fail) -> None:
    """SCHEDULER: None, an ASHA dict (``"type": "asha"`` or no type) or a race dict; clear errors otherwise."""
    from ray.tune.search.sample import Domain

    sched = study.scheduler
    if sched is None:
        return
    example = "e.g. {'type': 'race', 'min_seeds': 2, 'max_seeds': 8} or {'type': 'asha', 'grace_steps': 100}"
    if not isinstance(sched, dict):
        fail(f"SCHEDULER must be a dict ({example}) or None (every trial runs to the end)", name="SCHEDULER")
    kind = sched.get("type", "asha")
    if kind not in SCHEDULER_KEYS:
        fail(
            f"SCHEDULER type must be 'race' (early stopping that judges configurations on their seeds) or "
            f"'asha' (per-trial ASHA), got {kind!r}",
            needle=kind if isinstance(kind, str) else None,
            name="SCHEDULER",
        )
    allowed = SCHEDULER_KEYS[kind]
    for key in sorted(set(sched) - allowed - {"type"}, key=str):
        hint = SCHEDULER_HINTS.get(key) if SCHEDULER_HINTS.get(key) in allowed else None
        fail(
            f"unknown {kind} SCHEDULER setting {key!r}" + (f" (did you mean {hint!r}?)" if hint else "")
            + f"; allowed: type, {', '.join(sorted(allowed))}",
            needle=key,
        )  # fmt: skip

    def number(key: str, ok, what: str, integer: bool = False) -> None:
        v = sched.get(key)
        kind_ok = isinstance(v, int) if integer else isinstance(v, (int, float))
        if key in sched and (isinstance(v, bool) or not kind_ok or not ok(v)):
            fail(f"SCHEDULER[{key!r}] must be {what}, got {v!r}", needle=key)

    number("grace_steps", lambda v: v >= 1, "an integer >= 1 (training steps to the first rung)", integer=True)
    number("reduction_factor", lambda v: v > 1, "a number > 1")
    if kind != "race":
        return
    number("eta", lambda v: v > 1, "a number > 1 (the top 1/eta groups go on at each rung)")
    number("min_seeds", lambda v: v >= 1, "an integer >= 1 (seeds every configuration starts with)", integer=True)
    number("max_seeds", lambda v: v >= 1, "an integer >= 1 (seeds a configuration in doubt may grow to)", integer=True)
    number("confidence", lambda v: 0 < v < 1, "a number between 0 and 1, e.g. 0.95")
    settings = study.race_settings()
    if settings["min_seeds"] > settings["max_seeds"]:
        fail(
            f"SCHEDULER min_seeds ({settings['min_seeds']}) is above max_seeds ({settings['max_seeds']}); "
            "raise max_seeds or lower min_seeds",
            name="SCHEDULER",
        )
    if study.algorithm == "grid":
        for key, domain in study.space.items():
            if isinstance(domain, Domain):
                fail(
                    f"{key}: a race over a grid needs fixed configurations: use tune.grid_search([...]) or a "
                    "constant instead of a sampled domain, or SEARCH = {'algorithm': 'hyperopt', ...}",
                    needle=key,
                )


def resolved(study: Study) -> dict[str, Any]:
    """JSON-able summary of the study, saved with the experiment."""
    return {
        "file": str(study.path.resolve()),
        "name": study.name,
        "preset": study.preset,
        "space": {k: repr(v) for k, v in study.space.items()},
        "fixed": _plain(study.fixed),
        "cli": _plain(study.cli),
        "seeds": study.seeds,
        "metric": study.metric,
        "mode": study.mode,
        "search": _plain(study.search),
        "scheduler": _plain(study.scheduler),
        "max_concurrent": study.max_concurrent,
        "time_budget_s": study.time_budget_s,
        "trial": _plain(study.trial),
        "tied": study.tied,
        "base_config": to_dict(study.base_config()),
    }


def _unknown_key(key: str, leaves: dict[str, Any]) -> str:
    close = difflib.get_close_matches(split_index(key)[0], sorted(leaves), n=2)
    return f"unknown config key {key!r}" + (f" (did you mean {' or '.join(close)}?)" if close else "")


def _line_of_string(tree: ast.AST, needle: Any) -> int | str:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value == needle and isinstance(needle, str):
            return node.lineno
    return "?"


def _line_of_name(tree: ast.AST, name: str) -> int | str:
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store):
            return node.lineno
    return "?"


def _study_line(err: BaseException, path: Path) -> int | str:
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if frame.filename == str(path):
            return frame.lineno or "?"
    return "?"


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
        trials = (
            f"{configs} configurations x {r['min_seeds']}-{r['max_seeds']} seeds ({study.algorithm}; seeds in "
            f"order {r['seeds']})"
        )
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
