"""Ray Tune's side of ``SCHEDULER = {"type": "race", ...}``: a ``TrialScheduler`` and a ``Searcher`` around one
:class:`~.race_driver.RaceDriver` (public Tune APIs only).

- :class:`RaceSearcher` hands Tune the trials the race wants, one (configuration, seed) at a time: every grid
  configuration's first ``min_seeds`` seeds, then the extra seeds of groups in doubt (first), never more than
  ``MAX_CONCURRENT`` trials at once. With HyperOpt, a group's configuration is asked of HyperOpt when its first
  seed starts, and HyperOpt is told the group's mean when the group ends (all its seeds ended, or stopped).
- :class:`RaceScheduler` feeds every eval report to the race and stops each trial of a stopped group at its
  next report (waiting ones at once); a trial that errors is its seed's missing value.

Tune's own scheduler and searcher checkpoints are not used (Tune's schedulers lose their state on restore,
ray-project/ray#30838): the race lives in ``race/race.json`` (HyperOpt's state in ``race/hyperopt.pkl``),
written after each change and read back when Tune starts, fresh or resumed.
"""

from __future__ import annotations

import math
from functools import partial
from itertools import product
from typing import Any

from ray import cloudpickle
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from .progress import event
from .race import Race, RaceConfig
from .race_driver import FINISHED, GroupInfo, RaceDriver, RaceFile
from .storage import read_bytes, write_text
from .study import Study, group_id, group_label, plain

HYPEROPT_FILE = "hyperopt.pkl"  # beside race.json


def race_config(study: Study, images_per_step: int) -> RaceConfig:
    """The pure race's settings for ``study`` (rungs in images seen, as the trials report them)."""
    r = study.race_settings()
    return RaceConfig(
        max_images=study.base_config().train.steps * images_per_step,
        grace=int(r["grace_steps"]) * images_per_step,
        eta=float(r["eta"]),
        min_seeds=int(r["min_seeds"]),
        max_seeds=int(r["max_seeds"]),
        confidence=float(r["confidence"]),
        mode=study.mode,
        seeds=tuple(r["seeds"]),
        metric={"eval/fid": "FID", "eval/is": "IS"}.get(study.metric, study.metric),
        log_scale=study.metric in ("eval/fid", "eval/is"),  # positive, multiplicative seed noise
    )


def plan(study: Study) -> dict[str, GroupInfo]:
    """The groups to race: every grid configuration (named by its label), or HyperOpt's ``num_samples``
    configurations (``h00``, ``h01``, ...; their params come from HyperOpt when each starts)."""
    if study.algorithm != "grid":
        n = int(study.search.get("num_samples", 8))
        return {f"h{i:0{len(str(n - 1))}d}": GroupInfo() for i in range(n)}
    keys = sorted(study.space)
    axes = [v["grid_search"] if isinstance(v, dict) and "grid_search" in v else [v] for v in map(study.space.get, keys)]
    out: dict[str, GroupInfo] = {}
    base = study.base_overrides()
    for combo in product(*axes):
        params = plain(dict(zip(keys, combo)))
        label = name = group_label(params)
        k = 1
        while name in out:
            k += 1
            name = f"{label}#{k}"
        out[name] = GroupInfo(params, label, group_id(study.preset, params, base))
    return out


def race_parts(study: Study, experiment_dir: str, images_per_step: int) -> tuple[RaceSearcher, RaceScheduler]:
    """The searcher and scheduler of a race study, sharing one driver."""
    driver = RaceDriver(
        race=Race(race_config(study, images_per_step)),
        plan=plan(study),
        max_concurrent=study.max_concurrent,
        say=partial(event, "race"),
        write=RaceFile(experiment_dir),
    )
    searcher = RaceSearcher(driver, study, experiment_dir)
    return searcher, RaceScheduler(driver, sorted(study.space), study.metric, experiment_dir)


class RaceSearcher(Searcher):
    """Suggests the race's next (configuration, seed); wraps HyperOpt for non-grid studies."""

    def __init__(self, driver: RaceDriver, study: Study, experiment_dir: str):
        super().__init__(metric=study.metric, mode=study.mode)
        self.driver, self.race_dir = driver, RaceFile(experiment_dir).directory
        self.preset, self.base = study.preset, study.base_overrides()
        self.hyperopt = None
        if study.algorithm == "hyperopt":
            from ray.tune.search.hyperopt import HyperOptSearch

            s = study.search
            self.hyperopt = HyperOptSearch(
                space=HyperOptSearch.convert_search_space(dict(study.space)),
                metric=study.metric,
                mode=study.mode,
                n_initial_points=int(s.get("n_initial_points", 4)),
                random_state_seed=int(s.get("seed", 0)),
            )
            driver.on_group_end = self._group_ended
        self._loaded = False

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # the space is the study's; Tune's param_space stays empty

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        self._load_hyperopt()
        nxt = self.driver.next_trial(trial_id)
        if nxt is None:
            return None
        if nxt == FINISHED:
            return Searcher.FINISHED
        group, seed = nxt
        info = self.driver.groups[group]
        if info.params is None:  # a HyperOpt group's first seed: its configuration now
            info.params = plain(self.hyperopt.suggest(group))
            info.label, info.group_id = group_label(info.params), group_id(self.preset, info.params, self.base)
            self._save_hyperopt()
            self.driver.line(f"{group} is {info.label} (HyperOpt)")
            self.driver.save()
        return {**info.params, "train.seed": seed}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Trial ends reach the race through the scheduler; HyperOpt hears of groups (``_group_ended``)."""

    def _group_ended(self, group: str, value: float | None) -> None:
        if value is None or not math.isfinite(value):
            self.hyperopt.on_trial_complete(group, error=True)
        else:
            self.hyperopt.on_trial_complete(group, result={self.metric: value})
        self._save_hyperopt()

    def _save_hyperopt(self) -> None:
        write_text(self.race_dir, HYPEROPT_FILE, cloudpickle.dumps(self.hyperopt.__dict__))

    def _load_hyperopt(self) -> None:
        if self._loaded or self.hyperopt is None:
            return
        self._loaded = True
        if (data := read_bytes(self.race_dir, HYPEROPT_FILE)) is not None:
            self.hyperopt.__dict__.update(cloudpickle.loads(data))

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        """Not used: the race's state is race.json, written after every change."""

    def restore_from_dir(self, checkpoint_dir: str) -> None:
        """Not used: the scheduler reloads race.json when Tune starts."""


class RaceScheduler(FIFOScheduler):
    """Feeds eval reports and trial ends to the race; stops the trials of groups it stops."""

    def __init__(self, driver: RaceDriver, space_keys: list[str], metric: str, experiment_dir: str):
        super().__init__()
        self.driver, self.space_keys, self.race_metric = driver, space_keys, metric
        self.file = RaceFile(experiment_dir)
        self._stopping = False

    def set_search_properties(self, metric, mode, **spec) -> bool:
        """Called once as Tune starts, fresh or resumed: the race continues from race.json if there is one."""
        self.driver.begin(self.file.read())
        return True

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        who = self.driver.who(trial.trial_id)
        if who is None:  # restored by Tune but not in race.json's trial list: find it by its configuration
            group = self.driver.find_group(plain({k: trial.config.get(k) for k in self.space_keys}))
            if group is None:
                return
            who = (group, int(trial.config["train.seed"]))
        finished = trial.status in (Trial.TERMINATED, Trial.ERROR)
        self.driver.trial_added(trial.trial_id, *who, finished=finished)

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        value, images = result.get(self.race_metric), result.get("images_seen")
        if value is not None and images is not None and self.driver.who(trial.trial_id):
            self._act(tune_controller, self.driver.result(trial.trial_id, int(images), float(value)))
        return TrialScheduler.STOP if self.driver.should_stop(trial.trial_id) else TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict) -> None:
        self._ended(tune_controller, trial, result, error=False)

    def on_trial_error(self, tune_controller, trial: Trial) -> None:
        self._ended(tune_controller, trial, None, error=True)

    def on_trial_remove(self, tune_controller, trial: Trial) -> None:
        self._ended(tune_controller, trial, None, error=False)

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        self._act(tune_controller, None)
        return super().choose_trial_to_run(tune_controller)

    def debug_string(self) -> str:
        return f"Race over {len(self.driver.groups)} configurations (raydrift)."

    def _ended(self, tune_controller, trial: Trial, result: dict | None, error: bool) -> None:
        images = (result or trial.last_result or {}).get("images_seen", 0)
        self._act(tune_controller, self.driver.ended(trial.trial_id, int(images or 0), error))

    def _act(self, tune_controller, decisions: list | None) -> None:
        """After a stop (``decisions`` None: always), trials that have not started and whose group the race
        stopped never start (``stop_trial`` calls ``on_trial_remove`` back: no re-entry)."""
        if self._stopping or (decisions is not None and not any(d.action == "stop" for d in decisions)):
            return
        self._stopping = True
        try:
            for t in tune_controller.get_trials():
                if t.status == Trial.PENDING and self.driver.should_stop(t.trial_id):
                    tune_controller.stop_trial(t)
        finally:
            self._stopping = False
