"""benchmarks/gpu_check.py on the CPU, as the GPU machine runs it (no Ray, W&B, polars, hyperopt or
torch-fidelity importable), on MNIST idx files written here; then `raydrift evaluate` of its samples file."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_data import write_mnist_subset

from raydrift.cli import main
from raydrift.evaluation.samples import load_samples

REPO = Path(__file__).resolve().parents[1]
# What the GPU machine lacks: importing any of them there fails, so here too.
ABSENT = ["ray", "wandb", "polars", "hyperopt", "torch_fidelity", "click", "pytest"]
RUN_BLOCKED = (
    "import runpy, sys; sys.modules.update(dict.fromkeys({absent!r})); sys.argv = {argv!r}; "
    "runpy.run_path({script!r}, run_name='__main__')"
)


@pytest.mark.slow
def test_gpu_check_runs_on_cpu_without_the_missing_packages_and_its_samples_evaluate(tmp_path):
    mnist, out, cache = tmp_path / "mnist", tmp_path / "out", tmp_path / "cache"
    write_mnist_subset(mnist, n_train=300, n_test=100)
    script = str(REPO / "benchmarks" / "gpu_check.py")
    argv = [script, "--device", "cpu", "--budget-s", "3", "--smoke", "--mnist", str(mnist), "--out", str(out)]
    argv += ["--num-samples", "200", "--threads", "2"]
    for kv in ("model.dim=32", "model.depth=1", "model.heads=2", "drift.n_pos=8", "drift.n_neg=8"):
        argv += ["--set", kv]
    argv += ["--set", f"eval.cache_dir={cache}", "--set", "train.precision=bf16", "--set", "train.log_every=1"]
    code = RUN_BLOCKED.format(absent=ABSENT, argv=argv, script=script)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    assert {p.name for p in out.iterdir()} == {
        "summary.md",
        "results.json",
        "train_log.txt",
        "metrics.jsonl",
        "grid.png",
        "samples.npz",
    }
    results = json.loads((out / "results.json").read_text())
    assert results["errors"] == {}
    assert [r["shape"] for r in results["drift"]["rows"]] == [[4, 16, 16, 0, 64], [8, 8, 8, 4, 96]]
    assert all(r["eager_ms"] > 0 and r["compiled_ms"] > 0 for r in results["drift"]["rows"])
    assert "no --official" in results["drift"]["official_skipped"]
    assert results["feature"]["n_terms"] > results["feature"]["n_keys"] > 0
    train = results["train"]
    assert train["preset"] == "mnist" and train["steps"] >= 1 and train["config"]["train"]["precision"] == "bf16"
    assert train["eval"]["eval/fid_samples"] == 200 and train["eval"]["eval/fid_ref"] == "mnist:test"
    assert np.isfinite(train["eval"]["eval/fid"]) and train["eval"]["eval/fid_net"].startswith("lenet:mnist:")
    summary = (out / "summary.md").read_text()
    for heading in ("## Drift loss", "## Feature-space step", "## MNIST training"):
        assert heading in summary

    images, labels, meta = load_samples(out / "samples.npz")
    assert images.shape == (200, 1, 28, 28) and str(images.dtype) == "torch.uint8"
    assert labels.tolist() == [i % 10 for i in range(200)] and meta["step"] == train["steps"]

    # `raydrift evaluate` scores the samples file as the run scored them (same net, samples and reference).
    record = tmp_path / "evaluations.jsonl"
    r = CliRunner().invoke(
        main,
        ["evaluate", str(out / "samples.npz"), "--reference", "test", "--record", str(record)]
        + ["--set", f"data.root={mnist}", "--set", f"eval.cache_dir={cache}"],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    assert "evaluating 200 samples" in r.output and "200 samples vs mnist:test" in r.output
    (rec,) = [json.loads(line) for line in record.read_text().splitlines()]
    assert rec["eval/fid"] == pytest.approx(train["eval"]["eval/fid"], rel=1e-6)
    assert rec["eval/diversity"] == pytest.approx(train["eval"]["eval/diversity"], rel=1e-6)
    assert rec["step"] == train["steps"]


def test_evaluate_refuses_a_file_that_is_not_a_samples_file(tmp_path):
    bad = tmp_path / "x.npz"
    np.savez(bad, images=np.zeros((2, 1, 8, 8), np.uint8))
    r = CliRunner().invoke(main, ["evaluate", str(bad)])
    assert r.exit_code == 1 and "lacks labels, meta" in r.output and "Traceback" not in r.output
    notnpz = tmp_path / "notes.txt"
    notnpz.write_text("hello")
    r = CliRunner().invoke(main, ["evaluate", str(notnpz)])
    assert r.exit_code == 1 and "is not a samples file" in r.output


def test_evaluate_a_samples_file_of_real_digits(tmp_path):
    """Real test-split digits saved as a samples file score far better than the class-mean generator."""
    from raydrift.config import get_preset, to_dict
    from raydrift.data.datasets import load_split
    from raydrift.evaluation.samples import save_samples

    cfg = get_preset("digits")
    test = load_split(cfg.data, "test")
    path = tmp_path / "samples.npz"
    save_samples(path, test.x, test.y, {"config": to_dict(cfg), "step": 7})
    r = CliRunner().invoke(
        main, ["evaluate", str(path), "--num-samples", "300", "--set", f"eval.cache_dir={tmp_path / 'cache'}"]
    )
    assert r.exit_code == 0, r.output
    (rec,) = [json.loads(line) for line in (tmp_path / "samples.npz.evaluations.jsonl").read_text().splitlines()]
    assert rec["step"] == 7 and rec["eval/fid_samples"] == 300 and rec["eval/fid_ref"] == "digits:train"
    assert rec["eval/fid"] * 5 < rec["eval/fid_classmean"]
    assert rec["eval/diversity"] == pytest.approx(rec["eval/diversity_real"], rel=0.2)
    r = CliRunner().invoke(main, ["evaluate", str(path), "--num-samples", "100000"])
    assert r.exit_code == 2 and f"holds {len(test)} samples; ask for 2 to {len(test)}" in r.output


def test_gpu_check_usage_errors():
    script = REPO / "benchmarks" / "gpu_check.py"
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, str(script), "--out", "x"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "--mnist DIR is needed" in proc.stderr
    proc = subprocess.run(
        [sys.executable, str(script), "--out", "x", "--skip", "train,gpu"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2 and "--skip takes drift, feature, train; got gpu" in proc.stderr
