"""Issue 12 items 3 and 4 (and issue 11 item 8): requests the cluster cannot meet, an address nothing answers
at, and a Ray that cannot start fail in seconds with what is there and what to do; nothing is written."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from raydrift.cli import main
from raydrift.config import apply_overrides, get_preset
from raydrift.orchestration.resources import Node, ResourcesError, check_fits, local_nodes

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "search_spaces" / "smoke.py"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CPUS = int(sum(n.cpus for n in local_nodes()))
TOO_MANY = CPUS * 8


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--preset=toy2d", f"--workers={TOO_MANY}"], f"needs {TOO_MANY} worker(s) x (1 CPU) at once"),
        (["train", "--preset=toy2d", f"--workers={TOO_MANY}", "--dry-run"], f"needs {TOO_MANY} worker(s)"),
        (["train", "--preset=toy2d", f"--set=scaling.cpus_per_worker={TOO_MANY}", "--dry-run"], "room for 0 such"),
        (["tune", SMOKE, f"--set=scaling.num_workers={TOO_MANY}"], f"each trial needs {TOO_MANY} worker(s)"),
        (["tune", SMOKE, f"--set=scaling.num_workers={TOO_MANY}", "--dry-run"], "each trial needs"),
    ],
    ids=["train", "train-dry-run", "train-cpus-per-worker", "tune", "tune-dry-run"],
)
def test_more_cpus_than_the_machine_has_fail_before_anything_starts(tmp_path, args, message):
    out = ["--storage", tmp_path] if args[0] == "tune" else [f"--set=output_dir={tmp_path}"]
    r = run(*args, *out)
    assert r.exit_code == 1, r.output
    assert message in r.output and f"this machine (a local Ray cluster) has {CPUS:g} CPU(s)" in r.output
    assert "--address" in r.output and "Traceback" not in r.output
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("args", [["train", "--gpu"], ["train", "--gpu", "--dry-run"], ["tune", SMOKE, "--dry-run"]])
def test_a_gpu_request_on_a_machine_without_one_fails_at_once(tmp_path, args):
    out = (
        ["--storage", tmp_path, "--set=scaling.use_gpu=true"] if args[0] == "tune" else [f"--set=output_dir={tmp_path}"]
    )
    r = run(*args, "--preset=toy2d", *out)
    assert r.exit_code == 1, r.output
    assert "asks for 1 GPU per worker" in r.output and "has no GPU" in r.output
    assert "set scaling.use_gpu=false (drop --gpu) to train on the CPU" in r.output
    assert not any(tmp_path.iterdir())


def test_check_fits_counts_per_node():
    """Workers are placed whole on one node: 2 nodes of 3 CPUs hold two 2-CPU workers, not three."""
    cfg = apply_overrides(get_preset("toy2d"), ["scaling.num_workers=3", "scaling.cpus_per_worker=2"])
    with pytest.raises(ResourcesError, match="has 6 CPU\\(s\\) and 0 GPU\\(s\\) on 2 node\\(s\\), room for 2"):
        check_fits(cfg, [Node(3, 0), Node(3, 0)])
    check_fits(cfg, [Node(4, 0), Node(2, 0)])
    gpu = apply_overrides(cfg, ["scaling.use_gpu=true", "scaling.gpus_per_worker=0.5", "scaling.cpus_per_worker=1"])
    check_fits(gpu, [Node(8, 1), Node(8, 1)])  # 2 + 2 half-GPU workers
    with pytest.raises(ResourcesError, match="room for 2 such worker"):
        check_fits(gpu, [Node(8, 1), Node(8, 0)])


def test_the_connected_cluster_is_checked_before_training(ray_cluster, tmp_path):
    """The 2-CPU session cluster: a run of 3 workers is refused with the cluster's own numbers."""
    from raydrift.orchestration.ray_train import run_training

    cfg = apply_overrides(get_preset("toy2d"), [f"output_dir={tmp_path}", "scaling.num_workers=3"])
    with pytest.raises(ResourcesError, match="the cluster has 2 CPU\\(s\\) and 0 GPU\\(s\\) on 1 node\\(s\\)"):
        run_training(cfg)
    gpu = apply_overrides(cfg, ["scaling.num_workers=1", "scaling.use_gpu=true"])
    with pytest.raises(ResourcesError, match="has no GPU"):
        run_training(gpu)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["train", "train-dry-run", "tune", "tune-dry-run"])
def test_an_address_nothing_answers_at_fails_in_seconds(tmp_path, command):
    address = f"127.0.0.1:{closed_port()}"
    if command.startswith("train"):
        args = ["train", "--preset=toy2d", f"--set=output_dir={tmp_path}"]
    else:
        args = ["tune", SMOKE, "--storage", tmp_path]
    r = run(*args, "--address", address, *(["--dry-run"] if command.endswith("dry-run") else []))
    assert r.exit_code == 1, r.output
    assert f"cannot reach a Ray cluster at {address} (Connection refused" in r.output
    assert "leave --address out to start a local cluster" in r.output
    assert not any(tmp_path.iterdir())


def test_a_local_ray_that_cannot_start_is_one_paragraph(tmp_path):
    """A real start-up failure (Ray's temp directory cannot be made), in a fresh process: no traceback."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("raydrift")),
            "train",
            "--preset=toy2d",
            f"--set=output_dir={tmp_path}/runs",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, RAY_TMPDIR=str(blocker / "ray")),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Error: could not start a local Ray cluster (NotADirectoryError" in proc.stderr
    assert "point RAY_TMPDIR at a directory with room" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "runs").exists()
