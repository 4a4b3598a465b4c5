"""`raydrift train` argument handling: presets, keys, values, dry run, missing data (no Ray started)."""

import json
from pathlib import Path

from click.testing import CliRunner

from raydrift.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_unknown_preset_lists_the_choices():
    r = run("train", "--preset", "imagenet")
    assert r.exit_code == 2
    assert "'imagenet' is not one of" in r.output and "digits" in r.output and "cifar10" in r.output


def test_unknown_key_and_bad_value_are_one_line_errors():
    r = run("train", "--set", "drift.kernal=gaussian", "--dry-run")
    assert r.exit_code == 2 and "Did you mean drift.kernel" in r.output and "Traceback" not in r.output
    r = run("train", "--set", "drift.kernel=cauchy", "--dry-run")
    assert r.exit_code == 2 and "drift.kernel must be one of laplace, gaussian" in r.output


def test_dry_run_prints_the_resolved_config_and_plan(tmp_path):
    r = run(
        "train",
        "--preset",
        "digits",
        "--set",
        "drift.kernel=gaussian",
        "--workers",
        "2",
        "--set",
        "scaling.cpus_per_worker=1",  # 2 workers fit a 2-core machine (the dry run checks)
        "--dry-run",
        "--set",
        f"output_dir={tmp_path}",
    )
    assert r.exit_code == 0, r.output
    cfg = json.loads(r.output[: r.output.index("\nplan:")])
    assert cfg["drift"]["kernel"] == "gaussian" and cfg["scaling"]["num_workers"] == 2
    assert "plan: 1000 steps" in r.output and "2 worker(s)" in r.output
    assert not any(tmp_path.iterdir())  # nothing written


def test_missing_dataset_says_where_to_put_it(tmp_path):
    r = run("train", "--preset", "mnist", "--set", f"data.root={tmp_path / 'nowhere'}", "--dry-run")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "nowhere" in r.output and "train-images-idx3-ubyte" in r.output


def test_list_keys_documents_every_key():
    r = run("train", "--list-keys")
    assert r.exit_code == 0
    lines = r.output.strip().splitlines()
    assert any(line.startswith("drift.kernel ") and "laplace|gaussian" in line for line in lines)
    assert all(len(line.split()) >= 3 for line in lines)


def test_existing_run_needs_resume_or_overwrite(tmp_path):
    (tmp_path / "digits").mkdir()
    (tmp_path / "digits" / "metrics.jsonl").write_text("")
    r = run("train", "--preset", "digits", "--set", f"output_dir={tmp_path}", "--plain")
    assert r.exit_code == 1 and "--resume" in r.output and "--overwrite" in r.output


def test_plain_run_end_to_end(tmp_path):
    r = run(
        "train",
        "--preset",
        "digits",
        "--plain",
        "--set",
        f"output_dir={tmp_path}",
        "--set",
        "train.steps=6",
        "--set",
        "eval.every=3",
        "--set",
        "drift.compile=false",
        "--set",
        "eval.num_samples=200",
        "--set",
        "train.log_every=3",
        "--set",
        f"eval.cache_dir={tmp_path / 'cache'}",
    )
    assert r.exit_code == 0, r.output
    assert "step       6/6" in r.output and "FID" in r.output and "class-mean generator FID" in r.output
    run_dir = tmp_path / "digits"
    assert {p.name for p in run_dir.iterdir()} >= {"config.json", "meta.json", "metrics.jsonl", "samples"}


def test_evaluate_a_finished_run_under_another_protocol(tmp_path):
    cache = tmp_path / "cache"
    r = run(
        "train",
        "--preset",
        "digits",
        "--plain",
        "--set",
        f"output_dir={tmp_path}",
        "--set",
        "train.steps=4",
        "--set",
        "eval.every=0",
        "--set",
        "drift.compile=false",
        "--set",
        "eval.num_samples=100",
        "--set",
        "train.log_every=2",
        "--set",
        f"eval.cache_dir={cache}",
        "--name",
        "ev",
    )
    assert r.exit_code == 0, r.output
    r = run("evaluate", str(tmp_path / "ev"), "--num-samples", "300", "--reference", "test")
    assert r.exit_code == 0, r.output
    assert "step 4: FID" in r.output and "300 samples vs digits:test" in r.output
    (record,) = [json.loads(line) for line in (tmp_path / "ev" / "evaluations.jsonl").read_text().splitlines()]
    assert record["step"] == 4 and record["eval/fid_ref"] == "digits:test" and record["eval/fid_samples"] == 300
    # The run's own history keeps only its own protocol.
    refs = {
        json.loads(line).get("eval/fid_ref") for line in (tmp_path / "ev" / "metrics.jsonl").read_text().splitlines()
    }
    assert refs <= {None, "digits:train"}


def test_relative_paths_are_the_directory_the_user_typed_them_in(tmp_path, monkeypatch):
    """Ray runs workers and Tune trials elsewhere, so a relative data.root is made absolute where it is typed."""
    from raydrift.cli.common import absolute_paths
    from raydrift.cli.train import resolve_config

    monkeypatch.chdir(tmp_path)
    sets = ["data.root=../mnist", "drift.encoder_weights=auto", "drift.kernel=gaussian", "output_dir=s3://b/runs"]
    assert absolute_paths(sets) == [
        f"data.root={tmp_path.parent / 'mnist'}",
        "drift.encoder_weights=auto",  # not a path
        "drift.kernel=gaussian",
        "output_dir=s3://b/runs",  # a URI
    ]
    cfg, overrides = resolve_config("mnist", ("data.root=data/mnist", "eval.inception_weights=~/w.pth"))
    assert cfg.data.root == str(tmp_path / "data" / "mnist") == overrides["data.root"]
    assert cfg.eval.inception_weights == str(Path("~/w.pth").expanduser())
