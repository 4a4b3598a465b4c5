"""The smoke study on a real two-node Ray cluster on this machine (two raylets), stopped by pid."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from multinode import MultiNodeCluster

from raydrift.history import read_history

pytestmark = [pytest.mark.ray, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]

NODES_OF_WORKERS = """
import json, ray
from ray.util.state import list_actors
ray.init(address="{address}", logging_level="ERROR")
actors = list_actors(filters=[("class_name", "=", "RayTrainWorker")], detail=True, limit=1000)
print(json.dumps(sorted({{a.node_id for a in actors}})))
"""


def test_smoke_study_across_two_nodes(tmp_path):
    with MultiNodeCluster(nodes=2, cpus_per_node=1) as cluster:
        exe = Path(sys.executable).with_name("raydrift")
        proc = subprocess.run(
            [str(exe), "tune", str(REPO / "search_spaces" / "smoke.py"), "--address", cluster.address,
             "--storage", str(tmp_path), "--name", "two-nodes"],
            capture_output=True, text=True, timeout=600, env=cluster.env,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "4 trials:" in proc.stdout
        nodes = subprocess.run(
            [sys.executable, "-c", NODES_OF_WORKERS.format(address=cluster.address)],
            capture_output=True, text=True, timeout=120, env=cluster.env,
        )
        assert nodes.returncode == 0, nodes.stderr[-2000:]
        assert len(json.loads(nodes.stdout.strip().splitlines()[-1])) == 2  # workers ran on both nodes
        pids = cluster.pids()
        assert pids
    assert not cluster.pids()  # everything this test started is gone

    summary = json.loads((tmp_path / "two-nodes" / "summary.json").read_text())["trials"]
    assert {row["status"] for row in summary} <= {"completed", "early-stopped"}
    trials = sorted((tmp_path / "two-nodes").glob("trial_*"))
    assert len(trials) == 4
    for d in trials:
        assert read_history(d) and json.loads((d / "meta.json").read_text())["group_id"]
