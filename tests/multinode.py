"""A real multi-node Ray cluster on this machine (`ray start` head + workers), stopped by pid.

Each node gets its own short temp dir, as machines of a real cluster have their own disks (nodes sharing
one would share the session's runtime_resources, and one node's runtime-env agent would delete and
re-extract a job's working directory under the processes of the other); the cluster gets its own
ports. Stopping kills exactly the processes whose command line names one of those temp dirs or the
cluster's port, and their descendants (never `ray stop`, which kills every Ray process of the user on a
shared machine). The head serves the dashboard (job submission, state API) on
its own port, and each node's dashboard agent gets a free port too, so clusters of other users on the
same machine (Ray's default agent port is 52365) do not collide with this one.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent  # the venv's bin: ray, raydrift (as on a cluster node's PATH)
RAY = str(BIN / "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MultiNodeCluster:
    def __init__(self, nodes: int = 2, cpus_per_node: int = 1):
        self.nodes, self.cpus = nodes, cpus_per_node
        # short: socket paths are length-limited
        self.temp_dirs = [tempfile.mkdtemp(prefix="rdm", dir="/tmp") for _ in range(nodes)]
        self.port, self.dashboard_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.dashboard_url = f"http://127.0.0.1:{self.dashboard_port}"
        path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
        # RAY_ADDRESS reaches every Ray worker process of this cluster: Ray Train's PlacementGroupCleaner
        # calls the state API with no address, which otherwise fails ("Found multiple active Ray
        # instances") while another cluster runs on this machine, and leaks stopped trials' workers.
        self.env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", PATH=path)
        self.env["RAY_ADDRESS"] = self.address
        # Ray's job CLI and state API prefer RAY_API_SERVER_ADDRESS over any address given to them; a test
        # process that started its own local cluster (raydrift.orchestration.ray_train.init_ray pins it) would otherwise
        # send this cluster's jobs and Train's placement-group cleanup to that other cluster.
        self.env["RAY_API_SERVER_ADDRESS"] = self.dashboard_url

    def __enter__(self) -> MultiNodeCluster:
        try:
            head = [RAY, "start", "--head", f"--port={self.port}", f"--dashboard-port={self.dashboard_port}"]
            self._start(head, self.temp_dirs[0])
            for temp_dir in self.temp_dirs[1:]:
                self._start([RAY, "start", f"--address={self.address}"], temp_dir)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, args: list[str], temp_dir: str) -> None:
        common = [f"--num-cpus={self.cpus}", f"--temp-dir={temp_dir}", "--disable-usage-stats"]
        common.append(f"--dashboard-agent-listen-port={free_port()}")
        proc = subprocess.run([*args, *common], env=self.env, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")

    def pids(self) -> set[int]:
        """Processes of this cluster: their command line names one of our temp dirs or our port, plus
        descendants."""
        mine, parents = set(), {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents[int(proc.name)] = ppid
            ours = any(d in args for d in self.temp_dirs)
            if ours or f":{self.port} " in args + " " or f"--port={self.port}" in args:
                mine.add(int(proc.name))
        grew = True
        while grew:
            kids = {pid for pid, ppid in parents.items() if ppid in mine} - mine
            grew = bool(kids)
            mine |= kids
        mine.discard(os.getpid())
        return mine

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self.pids()
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.time() + 10
            while self.pids() and time.time() < deadline:
                time.sleep(0.2)
        for temp_dir in self.temp_dirs:
            shutil.rmtree(temp_dir, ignore_errors=True)

    def __exit__(self, *exc) -> None:
        self.stop()
