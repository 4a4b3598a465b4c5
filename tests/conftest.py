"""Shared fixtures: one local Ray cluster per test session (ray.init costs 5-13 s here)."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray cluster (2 CPUs, dashboard on) for the whole session; shut down at the end."""
    import ray

    from raydrift.orchestration.ray_train import init_ray

    temp_dir = tempfile.mkdtemp(prefix="rdt", dir="/tmp")  # short: Ray's socket paths are length-limited
    init_ray(num_cpus=2, temp_dir=temp_dir)
    yield
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def study_file(tmp_path):
    """Write a study file from source text; returns its path."""

    def write(source: str, name: str = "study.py") -> Path:
        path = tmp_path / name
        path.write_text(source)
        return path

    return write


@pytest.fixture(autouse=True, scope="session")
def _quiet_env():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("WANDB_SILENT", "true")
    yield


@pytest.fixture(scope="session")
def smoke_experiment(tmp_path_factory):
    """`raydrift tune search_spaces/smoke.py` run once per session, as a user runs it: (dir, stdout)."""
    import subprocess
    import sys

    storage = tmp_path_factory.mktemp("smoke-study")
    exe = Path(sys.executable).with_name("raydrift")
    proc = subprocess.run(
        [str(exe), "tune", str(REPO / "search_spaces" / "smoke.py"), "--storage", str(storage), "--name", "smoke"],
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ, RAY_TMPDIR="/tmp"),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return storage / "smoke", proc.stdout


@pytest.fixture(params=["eager", "native", "inductor"])
def drift_compile(request, monkeypatch):
    """The drift field's three implementations, as ``drift_loss(compile=...)`` picks them on CPU: torch eager
    (False), raydrift's CPU kernels (True), and torch.compile (True with ``RAYDRIFT_NATIVE=0``, as on GPUs
    and where the kernels cannot be built). Returns the ``compile`` flag."""
    from raydrift.method import native

    if request.param == "inductor":
        monkeypatch.setenv("RAYDRIFT_NATIVE", "0")
    elif request.param == "native":
        assert native.library() is not None, "raydrift's CPU kernels did not build (is a C++ compiler installed?)"
    return request.param != "eager"
