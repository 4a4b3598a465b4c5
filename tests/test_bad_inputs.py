"""Issue 12's bad inputs, items 1, 2, 5-8 and 18: names that escape, --overwrite of what raydrift did not make,
crafted and damaged checkpoints, resume and evaluate. Each asserts the exit code, the message, and that nothing
outside the run directory changed, nothing ran, or the right step was loaded. No Ray is started here."""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from raydrift.cli import main
from raydrift.config import get_preset, to_dict
from raydrift.training.checkpoint import (
    INFO_FILE,
    CheckpointError,
    find_checkpoints,
    load_checkpoint,
    load_latest_good,
)
from raydrift.training.rundir import CONFIG_FILE, MARKER_FILE, marker

REPO = Path(__file__).resolve().parents[1]
# toy2d shrunk to a few seconds: checkpoints at steps 0, 2, 4 (eval every 2)
TINY = [
    "--preset=toy2d",
    "--plain",
    "--set=drift.compile=false",
    "--set=drift.n_pos=16",
    "--set=drift.n_neg=16",
    "--set=model.dim=32",
    "--set=model.depth=1",
    "--set=eval.every=2",
    "--set=eval.num_samples=64",
    "--set=train.log_every=2",
    "--set=train.keep_checkpoints=3",
]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its content: equal snapshots = nothing changed."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished 4-step toy2d run (checkpoints at steps 0, 2 and 4); copy it before changing it."""
    out = tmp_path_factory.mktemp("trained")
    r = run("train", *TINY, f"--set=output_dir={out}", "--set=train.steps=4", "--name=r")
    assert r.exit_code == 0, r.output
    return out / "r"


def copy_run(trained: Path, tmp_path: Path, name: str = "r") -> Path:
    target = tmp_path / "runs" / name
    shutil.copytree(trained, target)
    return target


def steps_of(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------- 1, 18: run names are names


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--preset=toy2d", "--plain", "--name=..", "--overwrite"],
        ["train", "--preset=toy2d", "--plain", "--name={abs}", "--overwrite"],
        ["train", "--preset=toy2d", "--plain", "--set=name=..", "--overwrite"],
        ["train", "--preset=toy2d", "--dry-run", "--name=../../x"],  # item 18
        ["train", "--preset=toy2d", "--dry-run", "--name=a/b"],
        ["tune", str(REPO / "search_spaces" / "smoke.py"), "--storage={runs}", "--name=..", "--overwrite"],
        ["tune", str(REPO / "search_spaces" / "smoke.py"), "--storage={runs}", "--name={abs}", "--dry-run"],
    ],
    ids=[
        "train-dotdot",
        "train-abs",
        "train-set-name",
        "train-escape-dry-run",
        "train-slash",
        "tune-dotdot",
        "tune-abs",
    ],
)
def test_a_name_that_is_not_a_plain_name_is_refused_and_nothing_is_deleted(tmp_path, args):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / MARKER_FILE).write_text(json.dumps(marker("run")))  # even a marked parent is safe
    before = snapshot(tmp_path)
    args = [a.format(abs=victim, runs=tmp_path / "runs") for a in args]
    if args[0] == "train":
        args.append(f"--set=output_dir={tmp_path / 'runs'}")
    r = run(*args)
    assert r.exit_code == 2, r.output
    assert "is not a plain name" in r.output and "no '/', no '..'" in r.output
    assert snapshot(tmp_path) == before


def test_overwrite_leaves_a_directory_raydrift_did_not_make(tmp_path):
    mine = tmp_path / "runs" / "r"
    mine.mkdir(parents=True)
    (mine / "thesis.tex").write_text("years of work")
    before = snapshot(tmp_path)
    r = run("train", *TINY, f"--set=output_dir={tmp_path / 'runs'}", "--name=r", "--overwrite")
    assert r.exit_code == 1
    assert "was not created by raydrift (no .raydrift marker file in it), so --overwrite does not delete it" in r.output
    assert snapshot(tmp_path) == before


def test_tune_overwrite_leaves_a_directory_raydrift_did_not_make(tmp_path):
    (tmp_path / "S" / "exp").mkdir(parents=True)
    (tmp_path / "S" / "exp" / "data.csv").write_text("1,2,3")
    before = snapshot(tmp_path)
    r = run("tune", REPO / "search_spaces" / "smoke.py", f"--storage={tmp_path / 'S'}", "--name=exp", "--overwrite")
    assert r.exit_code == 1 and "experiment directory" in r.output and "was not created by raydrift" in r.output
    assert snapshot(tmp_path) == before


def test_overwrite_replaces_a_run_raydrift_made_and_nothing_else(trained, tmp_path):
    run_dir = copy_run(trained, tmp_path)
    (run_dir / "old-file").write_text("from the first run")
    (tmp_path / "runs" / "sibling").mkdir()
    (tmp_path / "runs" / "sibling" / "x").write_text("untouched")
    r = run("train", *TINY, f"--set=output_dir={tmp_path / 'runs'}", "--set=train.steps=2", "--name=r", "--overwrite")
    assert r.exit_code == 0, r.output
    assert not (run_dir / "old-file").exists() and (run_dir / MARKER_FILE).is_file()
    assert steps_of(run_dir) == [0, 2]
    assert (tmp_path / "runs" / "sibling" / "x").read_text() == "untouched"


# ---------------------------------------------------------------- 2: a crafted checkpoint runs nothing


class Payload:
    """Unpickling this opens (creates) a file: stands for any code a crafted pickle would run."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def crafted_run(tmp_path: Path, ran: Path) -> Path:
    """A run directory (marked, toy2d config) whose only checkpoint's state.pt carries a pickle payload."""
    run_dir = tmp_path / "runs" / "r"
    ckpt = run_dir / "checkpoints" / "step_000000009"
    ckpt.mkdir(parents=True)
    (run_dir / MARKER_FILE).write_text(json.dumps(marker("run")))
    (run_dir / CONFIG_FILE).write_text(json.dumps(to_dict(get_preset("toy2d"))))
    torch.save({"step": 9, "model": Payload(str(ran))}, ckpt / "state.pt")
    return run_dir


def test_the_payload_is_real(tmp_path):
    """Control: the crafted file does run its payload when unpickled in full (what raydrift did before)."""
    ran = tmp_path / "ran"
    run_dir = crafted_run(tmp_path, ran)
    torch.load(run_dir / "checkpoints" / "step_000000009" / "state.pt", weights_only=False)
    assert ran.exists()


@pytest.mark.parametrize("command", ["evaluate", "resume"])
def test_a_crafted_checkpoint_is_refused_and_its_payload_never_runs(tmp_path, command):
    ran = tmp_path / "ran"
    run_dir = crafted_run(tmp_path, ran)
    before = snapshot(tmp_path)
    if command == "evaluate":
        r = run("evaluate", run_dir)
    else:
        r = run("train", *TINY, f"--set=output_dir={tmp_path / 'runs'}", "--name=r", "--resume")
    assert r.exit_code == 1, r.output
    assert "holds objects other than tensors and plain data, so it was not loaded" in r.output
    assert "Traceback" not in r.output
    assert not ran.exists()
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- 5: a damaged newest checkpoint


def test_resume_falls_back_to_the_previous_good_checkpoint_and_says_so(trained, tmp_path):
    run_dir = copy_run(trained, tmp_path)
    newest = run_dir / "checkpoints" / "step_000000004" / "state.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # cut short, as by a full disk or a crash in a copy
    r = run("train", *TINY, f"--set=output_dir={tmp_path / 'runs'}", "--set=train.steps=6", "--name=r", "--resume")
    assert r.exit_code == 0, r.output
    assert f"warning: skipping checkpoint {newest.parent}" in r.output and "is damaged" in r.output
    assert f"falling back to checkpoint {run_dir / 'checkpoints' / 'step_000000002'} (step 2)" in r.output
    assert "at step 2 (stage 1)" in r.output
    assert steps_of(run_dir) == [0, 2, 4, 4, 6]  # the first stage's 0-4, then the resumed 4 and 6


@pytest.mark.parametrize("damage", ["truncate", "garble-without-info", "flip-a-byte"])
def test_a_damaged_checkpoint_is_found_before_it_is_used(trained, tmp_path, damage):
    ckpt = copy_run(trained, tmp_path) / "checkpoints" / "step_000000004"
    data = (ckpt / "state.pt").read_bytes()
    if damage == "truncate":
        (ckpt / "state.pt").write_bytes(data[: len(data) // 2])
        match = "is damaged: .* does not match"
    elif damage == "garble-without-info":  # an older checkpoint, saved before checkpoint.json existed
        (ckpt / INFO_FILE).unlink()
        (ckpt / "state.pt").write_bytes(data[:1000])
        match = "is damaged or not a checkpoint"
    else:
        mid = len(data) // 2
        (ckpt / "state.pt").write_bytes(data[:mid] + bytes([data[mid] ^ 1]) + data[mid + 1 :])
        match = "SHA-256 does not match"
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(ckpt)
    lines = []
    path, state = load_latest_good(find_checkpoints(ckpt.parent), log=lines.append)
    assert path.name == "step_000000002" and state["step"] == 2
    assert "skipping checkpoint" in lines[0] and "falling back" in lines[1]


def test_ray_workers_fall_back_to_an_older_checkpoint_of_their_run(trained, tmp_path):
    """What a Ray Train worker does with ray.train.get_checkpoint() (Checkpoint objects, no cluster needed)."""
    import ray.train

    from raydrift.orchestration.ray_train import usable_checkpoint

    storage = tmp_path / "train-abc"
    for name, step in (("checkpoint_2020-01-01_00-00-03", 4), ("checkpoint_2020-01-01_00-00-02", 2)):
        shutil.copytree(trained / "checkpoints" / f"step_{step:09d}", storage / name)
    newest = storage / "checkpoint_2020-01-01_00-00-03" / "state.pt"
    newest.write_bytes(newest.read_bytes()[:500])
    lines = []
    with usable_checkpoint(ray.train.Checkpoint.from_directory(str(newest.parent)), lines.append) as local:
        assert load_checkpoint(local)["step"] == 2
    assert "skipping checkpoint" in lines[0] and "(step 2)" in lines[1]


# ---------------------------------------------------------------- 6, 7: evaluate picks the right checkpoint


def test_evaluate_picks_the_highest_step_of_the_complete_checkpoints(trained, tmp_path):
    run_dir = copy_run(trained, tmp_path)
    ckpts = run_dir / "checkpoints"
    partial = ckpts / ".tmp_step_000000009_4242"  # a crash mid-save leaves this: newest by mtime, never complete
    shutil.copytree(ckpts / "step_000000000", partial)
    os.utime(ckpts / "step_000000004" / "state.pt", (1, 1))  # a copy that did not keep times: oldest file
    r = run("evaluate", run_dir, "--num-samples=64")
    assert r.exit_code == 0, r.output
    assert f"evaluating step 4 of {run_dir}" in r.output
    (record,) = [json.loads(line) for line in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    assert record["step"] == 4


def test_evaluate_reads_the_step_of_checkpoints_without_a_step_in_their_name(trained, tmp_path):
    """Ray Train's checkpoint_<time> directories, saved before checkpoint.json existed: loaded to order them."""
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    shutil.copy(trained / CONFIG_FILE, run_dir)
    for name, step in (("checkpoint_b", 2), ("checkpoint_a", 4)):  # name order disagrees with step order
        shutil.copytree(trained / "checkpoints" / f"step_{step:09d}", run_dir / name)
        (run_dir / name / INFO_FILE).unlink()
    r = run("evaluate", run_dir, "--num-samples=64")
    assert r.exit_code == 0, r.output
    assert "evaluating step 4" in r.output


def test_evaluate_falls_back_from_a_damaged_newest_checkpoint_saying_so(trained, tmp_path):
    run_dir = copy_run(trained, tmp_path)
    newest = run_dir / "checkpoints" / "step_000000004" / "state.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    r = run("evaluate", run_dir, "--num-samples=64")
    assert r.exit_code == 0, r.output
    assert "warning: skipping checkpoint" in r.output and "falling back to checkpoint" in r.output
    assert "evaluating step 2" in r.output


@pytest.mark.parametrize("given", ["trial", "train"])
def test_evaluate_takes_either_directory_of_a_study_trial(trained, tmp_path, given):
    trial, train = tmp_path / "exp" / "trial_abc123", tmp_path / "exp" / "train-abc123"
    trial.mkdir(parents=True)
    shutil.copy(trained / CONFIG_FILE, trial)
    shutil.copytree(trained / "checkpoints" / "step_000000004", train / "checkpoint_2020-01-01_00-00-00")
    r = run("evaluate", trial if given == "trial" else train, "--num-samples=64")
    assert r.exit_code == 0, r.output
    assert "evaluating step 4" in r.output
    assert json.loads((trial / "evaluations.jsonl").read_text())["step"] == 4  # next to the trial's history


def test_evaluate_on_a_directory_that_is_not_a_run(tmp_path):
    r = run("evaluate", tmp_path)
    assert r.exit_code == 1
    assert "is not a run directory: no config.json in it" in r.output and "trial_<id>/ or train-<id>/" in r.output


# ---------------------------------------------------------------- 8: --resume of a run that does not exist


@pytest.mark.parametrize("mode", ["--plain", "--dry-run"])
def test_resume_of_a_run_that_does_not_exist_is_refused(tmp_path, mode):
    args = ["train", "--preset=toy2d", mode, f"--set=output_dir={tmp_path}", "--name=nope", "--resume"]
    r = run(*args)
    assert r.exit_code == 1
    assert f"nothing to resume: run {tmp_path / 'nope'} does not exist" in r.output
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------- 9-12: studies and analyze options


SMOKE = REPO / "search_spaces" / "smoke.py"


@pytest.mark.parametrize(
    "args, code, message",
    [
        (  # 9
            ["tune", SMOKE, "--set=drift.kernel=gaussian", "--dry-run"],
            2,
            f"--set drift.kernel=gaussian: {SMOKE} sweeps drift.kernel (line 6), and --set cannot fix a swept key",
        ),
        (  # 12: the command line is blamed, not the study file
            ["tune", SMOKE, "--set=drift.kernal=gaussian", "--dry-run"],
            2,
            "Error: --set drift.kernal=gaussian: unknown config key 'drift.kernal' (did you mean drift.kernel",
        ),
        (["tune", SMOKE, "--set=train.steps=0", "--dry-run"], 2, "--set: train.steps must be >= 1, got 0"),
        (["tune", SMOKE, "--max-concurrent=0", "--dry-run"], 2, "'--max-concurrent': 0 is not in the range x>=1"),
        (["tune", SMOKE, "--max-concurrent=-1", "--dry-run"], 2, "'--max-concurrent': -1 is not in the range x>=1"),
        (["tune", SMOKE, "--time-budget=-5", "--dry-run"], 2, "'--time-budget': -5.0 is not in the range x>0"),
        (["tune", SMOKE, "--steps=0", "--dry-run"], 2, "'--steps': 0 is not in the range x>=1"),
        (["analyze", "{run}", "--at-step=-5"], 2, "'--at-step': -5 is not in the range x>=0"),
        (["analyze", "{run}", "--metric=eval/nonexistent"], 1, "no run records the metric 'eval/nonexistent'"),
    ],
    ids=[
        "swept-set",
        "set-typo",
        "set-value",
        "concurrent-0",
        "concurrent-neg",
        "budget-neg",
        "steps-0",
        "at-step",
        "metric",
    ],
)
def test_study_and_analyze_options_are_checked(trained, args, code, message):
    r = run(*[str(a).format(run=trained) for a in args])
    assert r.exit_code == code, r.output
    assert message in r.output and "Traceback" not in r.output
    if "unknown config key" in message:
        assert "smoke.py" not in r.output


def test_a_bad_time_budget_in_a_study_file_names_its_line(study_file):
    path = study_file('import ray.tune as tune\nSPACE = {"drift.kernel": "laplace"}\nTIME_BUDGET_S = -5\n')
    r = run("tune", path, "--dry-run")
    assert r.exit_code == 1 and f"{path}:3: TIME_BUDGET_S must be a number of seconds > 0 or None" in r.output


def test_without_a_scheduler_a_trial_cut_short_is_unfinished_not_early_stopped(tmp_path):
    """summarize() on Tune results of the shape ResultGrid yields (a stand-in object: path, metrics, error)."""
    from types import SimpleNamespace

    from raydrift.orchestration.study_file import load_study
    from raydrift.orchestration.tune import summarize

    trial = tmp_path / "trial_a"
    trial.mkdir()
    (trial / "metrics.jsonl").write_text(json.dumps({"step": 10, "eval/fid": 3.0}) + "\n")
    study = load_study(SMOKE)
    result = SimpleNamespace(path=str(trial), metrics={"step": 10}, error=None)
    study.scheduler, study.time_budget_s = None, 60
    (row,) = summarize([result], study)
    assert row["status"] == "unfinished" and row["reason"] == "stopped at step 10"
    study.scheduler = {"grace_steps": 10}
    (row,) = summarize([result], study)
    assert row["status"] == "early-stopped" and "(by ASHA, or cut by the time budget)" in row["reason"]


# ---------------------------------------------------------------- 13, 15: damaged run files in analyze


def test_a_corrupt_middle_line_of_metrics_is_reported_with_file_and_line(trained, tmp_path):
    run_dir = copy_run(trained, tmp_path)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    lines[1] = "garbage{"
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n" + '{"step": 9, "tru')  # + a cut last line
    r = run("analyze", run_dir)
    assert r.exit_code == 0, r.output
    assert f"warning: {run_dir / 'metrics.jsonl'}:2: not a JSON record, skipped: the file is corrupted" in r.output
    assert f"metrics.jsonl:{len(lines) + 1}" not in r.output  # a cut last line is what a crash leaves: quiet


@pytest.mark.parametrize("name", ["config.json", "meta.json"])
def test_a_corrupt_json_file_in_analyze_is_named(trained, tmp_path, name):
    run_dir = copy_run(trained, tmp_path)
    (run_dir / name).write_text('{"preset": "toy2d", ')
    r = run("analyze", run_dir)
    assert r.exit_code == 1
    assert f"Error: {run_dir / name} is not valid JSON (" in r.output and "Traceback" not in r.output


# ---------------------------------------------------------------- 14: damaged MNIST files


def write_idx(path: Path, array) -> None:
    import gzip
    import struct

    import numpy as np

    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)


def mnist_dir(tmp_path: Path, damage: str) -> tuple[Path, str]:
    import numpy as np

    root = tmp_path / "mnist"
    root.mkdir()
    n = 60
    write_idx(root / "train-images-idx3-ubyte.gz", np.zeros((n, 28, 28), np.uint8))
    write_idx(root / "train-labels-idx1-ubyte.gz", np.arange(n - (10 if damage == "count" else 0)) % 10)
    images = root / "train-images-idx3-ubyte.gz"
    if damage == "truncated":
        images.write_bytes(images.read_bytes()[:-20])  # cut inside the deflate stream
        return root, f"{images} cannot be read (EOFError"
    if damage == "random":
        images.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
        return root, f"{images} cannot be read (BadGzipFile"
    return root, "expected images [N, H, W] and labels [N] of the same N, got (60, 28, 28) and (50,)"


@pytest.mark.parametrize("damage", ["truncated", "random", "count"])
@pytest.mark.parametrize("command", ["train", "tune"])
def test_damaged_mnist_files_are_a_clear_error(tmp_path, damage, command):
    root, message = mnist_dir(tmp_path, damage)
    if command == "train":
        args = ["train", "--preset=mnist", f"--set=data.root={root}", "--dry-run"]
    else:
        args = ["tune", SMOKE, "--preset=mnist", f"--set=data.root={root}", "--storage", tmp_path / "studies"]
    r = run(*args)
    assert r.exit_code == 1, r.output
    assert message in r.output
    assert "Aborted!" not in r.output and "Traceback" not in r.output
    assert not (tmp_path / "studies").exists()


# ---------------------------------------------------------------- 16: evaluate's inputs


def test_evaluate_with_no_loadable_checkpoint(trained, tmp_path):
    run_dir = copy_run(trained, tmp_path)
    for state in run_dir.rglob("state.pt"):
        state.write_bytes(state.read_bytes()[:100])
    r = run("evaluate", run_dir)
    assert r.exit_code == 1 and "Error: no usable checkpoint: " in r.output and "Traceback" not in r.output


def digits_run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "d"
    run_dir.mkdir()
    (run_dir / CONFIG_FILE).write_text(json.dumps(to_dict(get_preset("digits"))))
    return run_dir


def test_evaluate_with_inception_weights_missing_or_not_weights(tmp_path):
    run_dir = digits_run(tmp_path)
    r = run("evaluate", run_dir, "--feature-net=inception", f"--inception-weights={tmp_path / 'none.pth'}")
    assert r.exit_code == 2 and "Invalid value for --inception-weights: no such file" in r.output
    (tmp_path / "notes.txt").write_text("not weights")
    r = run("evaluate", run_dir, "--feature-net=inception", f"--inception-weights={tmp_path / 'notes.txt'}")
    assert r.exit_code == 1 and "notes.txt is not a TF-Inception weights file" in r.output
    assert "Traceback" not in r.output


# ---------------------------------------------------------------- 17: feature-space weights, a loss that turns NaN


@pytest.mark.parametrize("mode", ["--dry-run", "--plain"])
@pytest.mark.parametrize(
    "sets, message",
    [
        ([], "drift.encoder=mae needs a weights file (drift.encoder_weights)"),
        (["--set=drift.encoder_weights=/no/such/mae.pt"], "mae weights file not found: '/no/such/mae.pt'"),
    ],
    ids=["mae-no-file", "missing-file"],
)
def test_feature_space_without_encoder_weights_fails_before_training(tmp_path, mode, sets, message):
    r = run("train", "--preset=digits", "--set=drift.space=feature", *sets, mode, f"--set=output_dir={tmp_path}")
    assert r.exit_code == 1 and f"Error: {message}" in r.output and "Traceback" not in r.output
    assert not any(tmp_path.iterdir())


def test_a_loss_that_turns_nan_is_a_one_line_failure(tmp_path):
    nan = ["--set=optim.lr=1e30", "--set=optim.grad_clip=0", "--set=optim.warmup_steps=0", "--set=eval.every=0"]
    r = run("train", *TINY, *nan, f"--set=output_dir={tmp_path}", "--set=train.steps=10")
    assert r.exit_code == 1, r.output
    assert "Error: training failed: loss became nan at step 1" in r.output and "Traceback" not in r.output
    assert "lower optim.lr" in r.output


# ---------------------------------------------------------------- 19: a study file is code


def test_tune_help_and_readme_say_a_study_file_is_code():
    r = run("tune", "--help")
    assert r.exit_code == 0
    assert "STUDY_FILE is Python code" in r.output and "Run only study files you trust" in r.output.replace("\n ", "")
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "A study file is Python code and runs when `raydrift tune` loads it (also with `--dry-run`)" in readme
    assert "run only study files you trust" in readme
