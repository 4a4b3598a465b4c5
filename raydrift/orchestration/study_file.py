"""Reading a study file (its format: :mod:`raydrift.orchestration.study`): run it, then check every setting,
and the command line's overrides, against the config schema, each problem named by file and line."""

from __future__ import annotations

import ast
import difflib
import traceback
from pathlib import Path
from typing import Any

from raydrift.config import ConfigError, apply_overrides, flat_keys, get_preset, split_index
from raydrift.config.presets import PRESETS as PRESET_FUNCTIONS

from .study import RACE_DEFAULTS, OverrideError, Study, StudyError, plain

SEARCH_ALGORITHMS = ("grid", "hyperopt")
TRIAL_KEYS = {"num_workers", "cpus_per_worker", "gpus_per_worker", "use_gpu", "max_failures"}
SCHEDULER_KEYS = {"asha": {"grace_steps", "reduction_factor"}, "race": set(RACE_DEFAULTS)}
METRICS = ("eval/fid", "eval/is", "eval/diversity", "train/loss")

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
            f"{path}:{line_of_name(tree, name)}: unknown study setting {name}"
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
    if seeds is not None:
        study.scheduler = _race_over(study.scheduler, len(study.seeds))
    validate(study, tree)
    return study


def _race_over(scheduler: Any, n: int) -> Any:
    """A race given ``--seeds`` uses those seeds: ``max_seeds`` becomes their count (``min_seeds`` too where the
    study fixed the count, ``min_seeds == max_seeds``; else it is capped at ``n``). Other schedulers as given."""
    if not isinstance(scheduler, dict) or scheduler.get("type") != "race" or n < 1:
        return scheduler
    settings = RACE_DEFAULTS | scheduler
    fixed = settings["min_seeds"] == settings["max_seeds"]
    return scheduler | {"max_seeds": n, "min_seeds": n if fixed else min(settings["min_seeds"], n)}


def validate(study: Study, tree: ast.AST | None = None) -> None:
    from ray.tune.search.sample import Categorical, Domain

    path = study.path
    tree = tree or ast.parse(path.read_text())

    def fail(msg: str, needle: Any = None, name: str | None = None) -> None:
        line = line_of_string(tree, needle) if needle is not None else line_of_name(tree, name) if name else "?"
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
                f"--set {key}={value}: {path} sweeps {swept[0]} (line {line_of_string(tree, swept[0])}), and --set "
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
            v = plain(value) if not isinstance(value, str) else value
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


def _unknown_key(key: str, leaves: dict[str, Any]) -> str:
    close = difflib.get_close_matches(split_index(key)[0], sorted(leaves), n=2)
    return f"unknown config key {key!r}" + (f" (did you mean {' or '.join(close)}?)" if close else "")


def line_of_string(tree: ast.AST, needle: Any) -> int | str:
    """Line of the first string constant ``needle`` in a study file's tree (``?`` if none)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value == needle and isinstance(needle, str):
            return node.lineno
    return "?"


def line_of_name(tree: ast.AST, name: str) -> int | str:
    """Line where a study file assigns ``name`` (``?`` if it does not)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store):
            return node.lineno
    return "?"


def _study_line(err: BaseException, path: Path) -> int | str:
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if frame.filename == str(path):
            return frame.lineno or "?"
    return "?"
