"""Study files are validated before any trial starts: clear errors naming the file and line."""

import pytest
from conftest import REPO

from raydrift.orchestration.study import StudyError, group_id, group_label
from raydrift.orchestration.study_file import load_study

GOOD = '''"""A test study."""
from ray import tune

PRESET = "digits"
SPACE = {
    "drift.kernel": tune.grid_search(["laplace", "gaussian"]),
    "drift.n_neg": tune.grid_search([16, 32]),
}
TIED = {"drift.n_pos": "drift.n_neg"}
FIXED = {"train.steps": 10}
SEEDS = [0, 1]
'''


def test_good_study_loads_with_trial_configs(study_file):
    study = load_study(study_file(GOOD))
    assert study.preset == "digits" and study.seeds == [0, 1] and study.description == "A test study."
    cfg = study.trial_config({"drift.kernel": "gaussian", "drift.n_neg": 32}, seed=1)
    assert cfg.drift.kernel == "gaussian" and cfg.drift.n_pos == cfg.drift.n_neg == 32
    assert cfg.train.seed == 1 and cfg.train.steps == 10


@pytest.mark.parametrize("path", sorted((REPO / "search_spaces").glob("*.py")), ids=lambda p: p.stem)
def test_every_shipped_study_is_valid(path):
    study = load_study(path)
    assert study.description and study.seeds
    assert study.base_config().data.dataset == "digits"  # the default runs without downloads
    for preset in study.presets:
        load_study(path, preset=preset)


@pytest.mark.parametrize(
    "source,match",
    [
        ("SPACE = {'drift.kernel': [1, 2}\n", r"study.py:1: syntax error"),
        (
            "from ray import tune\n\nSPACE = {\n  'drift.kernal': tune.grid_search(['laplace']),\n}\n",
            r"study.py:4: unknown config key 'drift.kernal' \(did you mean drift.kernel",
        ),
        (
            "from ray import tune\nSPACE = {'drift.kernel': tune.grid_search(['laplace', 'cauchy'])}\n",
            r"study.py:2: drift.kernel: value 'cauchy' is not accepted",
        ),
        ("SPACE = {'drift.n_neg': 8}\nSEARCH_SPACE = {}\n", r"study.py:2: unknown study setting SEARCH_SPACE"),
        ("SPACE = {'drift.n_neg': 8}\nSEEDS = [0, 0]\n", r"study.py:2: SEEDS has duplicates"),
        (
            "from ray import tune\nSPACE = {'optim.lr': tune.grid_search([1e-3])}\n"
            "SEARCH = {'algorithm': 'hyperopt'}\n",
            r"optim.lr: grid_search cannot be used with hyperopt",
        ),
        (
            "from ray import tune\nSPACE = {'optim.lr': tune.loguniform(1e-4, 1e-2)}\n",
            r"continuous domains need SEARCH",
        ),
        ("SPACE = {'drift.n_neg': 8}\nTIED = {'drift.n_pos': 'drift.npos'}\n", r"study.py:2: TIED"),
        ("SPACE = {'train.seed': 3}\n", r"seeds are their own axis"),
        ("SPACE = {'drift.n_neg': 8}\nFIXED = {'train.stpes': 5}\n", r"study.py:2: unknown config key 'train.stpes'"),
        ("x = 1 / 0\nSPACE = {}\n", r"study.py:1: ZeroDivisionError"),
        ("FIXED = {}\n", r"a study needs SPACE"),
        ("SPACE = {'drift.n_neg': 8}\nPRESET = 'imagenet'\n", r"study.py:2: unknown preset 'imagenet'"),
    ],
)
def test_bad_study_files_name_file_and_line(study_file, source, match):
    with pytest.raises(StudyError, match=match):
        load_study(study_file(source))


def test_missing_file_lists_the_studies_next_to_it(tmp_path, study_file):
    study_file(GOOD, name="kernels.py")
    with pytest.raises(StudyError, match=r"no such study file \(studies there: kernels.py\)"):
        load_study(tmp_path / "kernel.py")


def test_group_ids_ignore_the_seed_and_labels_are_readable():
    a = group_id("digits", {"drift.kernel": "gaussian"}, {"train.steps": 10})
    assert a == group_id("digits", {"drift.kernel": "gaussian"}, {"train.steps": 10})
    assert a != group_id("digits", {"drift.kernel": "laplace"}, {"train.steps": 10})
    assert group_label({"drift.kernel": "gaussian", "drift.temperatures": (0.02, 0.2)}) == (
        "kernel=gaussian,temperatures=0.02/0.2"
    )


RACE = "from ray import tune\nSPACE = {'drift.kernel': tune.grid_search(['laplace', 'gaussian'])}\n"


@pytest.mark.parametrize(
    "scheduler,match",
    [
        ("{'type': 'hyperband'}", r"study.py:3: SCHEDULER type must be 'race' .* or 'asha' .*, got 'hyperband'"),
        (
            "{'type': 'race', 'reduction_factor': 3}",
            r"unknown race SCHEDULER setting 'reduction_factor' \(did you mean 'eta'\?\); allowed: type, confid",
        ),
        ("{'grace': 3}", r"unknown asha SCHEDULER setting 'grace' \(did you mean 'grace_steps'\?\)"),
        ("{'type': 'race', 'min_seeds': 4, 'max_seeds': 3}", r"min_seeds \(4\) is above max_seeds \(3\); raise max"),
        ("{'type': 'race', 'confidence': 95}", r"'confidence'\] must be a number between 0 and 1, e.g. 0.95"),
        ("{'type': 'race', 'eta': 1}", r"SCHEDULER\['eta'\] must be a number > 1"),
        ("{'type': 'race', 'grace_steps': 2.5}", r"SCHEDULER\['grace_steps'\] must be an integer >= 1"),
        ("'race'", r"SCHEDULER must be a dict \(e.g. \{'type': 'race'"),
    ],
)
def test_bad_scheduler_says_what_and_how(study_file, scheduler, match):
    with pytest.raises(StudyError, match=match):
        load_study(study_file(RACE + f"SCHEDULER = {scheduler}\n"))


def test_race_over_a_grid_needs_fixed_configurations(study_file):
    source = "from ray import tune\nSPACE = {'drift.kernel': tune.choice(['laplace', 'gaussian'])}\n"
    with pytest.raises(StudyError, match=r"study.py:2: drift.kernel: a race over a grid needs fixed configurations"):
        load_study(study_file(source + "SCHEDULER = {'type': 'race'}\n"))


def test_scheduler_types_and_race_seed_order(study_file):
    asha = load_study(study_file(RACE + "SCHEDULER = {'grace_steps': 5, 'reduction_factor': 3}\n"))
    assert asha.scheduler_type == "asha"  # the keys without "type" keep meaning ASHA
    assert load_study(study_file(RACE + "SCHEDULER = None\n")).scheduler_type is None
    race = load_study(study_file(RACE + "SEEDS = [7, 3]\nSCHEDULER = {'type': 'race', 'max_seeds': 5}\n"))
    settings = race.race_settings()
    assert race.scheduler_type == "race" and settings["seeds"] == [7, 3, 0, 1, 2]  # SEEDS first, then unused
    assert settings["min_seeds"] == 2 and settings["eta"] == 2.0 and settings["confidence"] == 0.95


def test_seeds_on_the_command_line_are_the_seeds_a_race_uses(study_file):
    fixed = study_file(RACE + "SEEDS = [0, 1, 2]\nSCHEDULER = {'type': 'race', 'min_seeds': 3, 'max_seeds': 3}\n")
    more = load_study(fixed, seeds=[0, 1, 2, 3, 4, 5]).race_settings()  # `raydrift tune --seeds 0,1,2,3,4,5`
    assert (more["min_seeds"], more["max_seeds"], more["seeds"]) == (6, 6, [0, 1, 2, 3, 4, 5])
    fewer = load_study(fixed, seeds=[4, 9]).race_settings()
    assert (fewer["min_seeds"], fewer["max_seeds"], fewer["seeds"]) == (2, 2, [4, 9])
    racing = study_file(RACE + "SCHEDULER = {'type': 'race', 'min_seeds': 2, 'max_seeds': 4}\n")
    wide = load_study(racing, seeds=[5, 6, 7, 8, 9, 10]).race_settings()  # escalation may use all six
    assert (wide["min_seeds"], wide["max_seeds"], wide["seeds"]) == (2, 6, [5, 6, 7, 8, 9, 10])
    assert load_study(racing).race_settings()["max_seeds"] == 4  # the file's own settings without --seeds
