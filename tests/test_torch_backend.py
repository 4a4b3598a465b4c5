"""raydrift's torch backend for Ray Train: torch stays out of the trial driver and Train's controller.

(That its process group spans the workers as ``TorchTrainer``'s does is shown by ``tests/test_exchange.py``.)"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from raydrift.torch_backend import TorchBackendConfig

REPO = Path(__file__).resolve().parents[1]


def test_building_a_trainer_imports_no_torch():
    """What a Tune trial's driver does before ``fit()``: build the trainer and pickle what goes to Train's
    controller (the backend config, its worker context, the training function)."""
    code = (
        "import sys, json, ray.cloudpickle as cp\n"
        "from raydrift.launch import make_trainer\n"
        "from raydrift.presets import get_preset\n"
        "t = make_trainer(get_preset('digits'), '/tmp/unused', storage_path='/tmp/unused', name='t')\n"
        "cp.dumps(t.backend_config); cp.dumps(t.backend_config.train_func_context); cp.dumps(t.train_loop_per_worker)\n"
        "print(json.dumps([type(t).__name__, t.backend_config.backend, 'torch' in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["DataParallelTrainer", "gloo", False]


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="gloo .* or nccl"):
        TorchBackendConfig(backend="mpi")
    assert TorchBackendConfig(backend="nccl").to_dict() == {"backend": "nccl", "init_method": "env", "timeout_s": 1800}


def _worker(config):
    """Rank 0 reads which shared libraries Train's (alive) controller and this worker have loaded."""
    import os

    import ray.train
    import torch.distributed as dist
    from ray.util.state import list_actors

    controllers = list_actors(filters=[("class_name", "=", "TrainController"), ("state", "=", "ALIVE")], detail=True)
    maps = {a.pid: Path(f"/proc/{a.pid}/maps").read_text() for a in controllers}
    own = Path(f"/proc/{os.getpid()}/maps").read_text()
    out = {
        "controllers": len(maps),
        "controller_has_torch": any("libtorch" in m for m in maps.values()),
        "worker_has_torch": "libtorch" in own,
        "process_group": dist.is_initialized() and dist.get_backend() == "gloo",
    }
    Path(config["out"]).write_text(json.dumps(out))
    ray.train.report({"done": 1})


@pytest.mark.ray
def test_train_controller_never_loads_torch(ray_cluster, tmp_path):
    import ray.cloudpickle
    from ray.train import RunConfig, ScalingConfig
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import test modules
    out = tmp_path / "out.json"
    result = DataParallelTrainer(
        _worker,
        train_loop_config={"out": str(out)},
        scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
        backend_config=TorchBackendConfig(),
        run_config=RunConfig(name="backend", storage_path=str(tmp_path / "ray")),
    ).fit()
    assert result.error is None, result.error
    got = json.loads(out.read_text())
    assert got == {"controllers": 1, "controller_has_torch": False, "worker_has_torch": True, "process_group": True}
