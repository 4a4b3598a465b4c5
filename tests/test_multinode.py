"""The smoke study on a real two-node Ray cluster on this machine (two raylets), stopped by pid.

Submitted the way cluster/README.md tells users to: `cluster/submit.sh raydrift tune ... --address auto`
(a Ray job whose working directory is this checkout), with the experiment on a path both nodes see, or on
a storage URI (``file://`` here, opened by pyarrow as ``s3://`` is on a real cluster). Each node has its
own temp dir, so files a trial leaves on its node's disk are lost, as on a real cluster. Then
`raydrift analyze` reads the experiment back.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.analysis_helpers import parse_tables, table
from multinode import BIN, MultiNodeCluster

from raydrift.training.rundir import read_history

pytestmark = [pytest.mark.ray, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]

CLUSTER_STATE = """
import json, ray
from ray.util.state import list_actors
ray.init(address="{address}", logging_level="ERROR")
actors = list_actors(address="{address}", filters=[("class_name", "=", "RayTrainWorker")], detail=True, limit=1000)
alive = [n for n in ray.nodes() if n["Alive"]]
from ray.job_submission import JobSubmissionClient
jobs = JobSubmissionClient("{dashboard}").list_jobs()
job_env = sorted(k for j in jobs for k in ((j.runtime_env or {{}}).get("env_vars") or {{}}))
print(json.dumps({{"worker_nodes": sorted({{a.node_id for a in actors}}), "nodes": len(alive), "job_env": job_env}}))
"""


@pytest.mark.parametrize("kind", ["path", "uri"])
def test_smoke_study_submitted_to_two_nodes(tmp_path, kind):
    storage = tmp_path / "shared"  # a local path both raylets see
    storage_arg = str(storage) if kind == "path" else f"file://{storage}"
    with MultiNodeCluster(nodes=2, cpus_per_node=1) as cluster:
        env = dict(cluster.env, RAY_ADDRESS=cluster.dashboard_url, WANDB_API_KEY="not-a-real-key")
        job = subprocess.run(
            [
                str(REPO / "cluster" / "submit.sh"),
                "raydrift",
                "tune",
                "search_spaces/smoke.py",
                "--address",
                "auto",
                "--storage",
                storage_arg,
                "--name",
                "two-nodes",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            env=env,
        )
        assert job.returncode == 0, job.stdout[-4000:] + job.stderr[-3000:]
        assert "4 trials:" in job.stdout, job.stdout[-4000:]
        state = subprocess.run(
            [sys.executable, "-c", CLUSTER_STATE.format(address=cluster.address, dashboard=cluster.dashboard_url)],
            capture_output=True,
            text=True,
            timeout=120,
            env=cluster.env,
        )
        assert state.returncode == 0, state.stderr[-2000:]
        state = json.loads(state.stdout.strip().splitlines()[-1])
        assert state["nodes"] == 2
        assert len(state["worker_nodes"]) == 2  # Train workers ran on both raylets
        assert "WANDB_API_KEY" in state["job_env"]  # from the submitting shell to every process of the job
        assert cluster.pids()
    assert not cluster.pids()  # everything this test started is gone

    experiment = storage / "two-nodes"
    if kind == "path":  # tune writes its summary next to a local experiment only
        summary = json.loads((experiment / "summary.json").read_text())["trials"]
        assert len(summary) == 4 and {row["status"] for row in summary} <= {"completed", "early-stopped"}
    trials = sorted(experiment.glob("trial_*"))
    assert len(trials) == 4
    for d in trials:
        assert read_history(d) and json.loads((d / "meta.json").read_text())["group_id"]

    analyze = subprocess.run(
        [str(BIN / "raydrift"), "analyze", str(experiment), "--out", str(tmp_path / "analysis")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert analyze.returncode == 0, analyze.stdout[-3000:] + analyze.stderr[-3000:]
    groups = table(parse_tables(analyze.stdout), "Matched step")  # at the common step (rows: one per config)
    assert sorted(groups) == ["kernel=gaussian", "kernel=laplace"]
    assert all(row["n"] == "2" for row in groups.values())  # 2 kernels x 2 seeds
    assert analyze.stdout.index("## Verdict") < analyze.stdout.index("## Matched step")
    assert (tmp_path / "analysis" / "summary.csv").stat().st_size > 0
