"""Sample exchange on 2 Ray Train workers: the gathered drift equals the single-process drift on the union.

The workers run under Ray Train's ``TorchTrainer`` (gloo), as raydrift's runs do, so this also shows its
process group and torchrun environment spanning both workers."""

import json
from pathlib import Path

import pytest
import torch

from raydrift.method.drift import drift_loss

pytestmark = [pytest.mark.ray]
G, CG, CP, CN, S, WORLD = 3, 5, 6, 2, 4, 2


def union_inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(G, WORLD * CG, S, generator=g)
    pos = torch.randn(G, WORLD * CP, S, generator=g) + 0.3
    neg = torch.randn(G, WORLD * CN, S, generator=g)
    w = torch.rand(G, WORLD * CN, generator=g) * 2
    return x, pos, neg, w


def _worker(config):
    import os

    import ray.train
    import torch.distributed as dist

    from raydrift.method.drift import drift_loss
    from raydrift.training.exchange import gather_step

    rank = ray.train.get_context().get_world_rank()
    env = {k: os.environ.get(k) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    x, pos, neg, w = union_inputs()
    mine = lambda t, c: t[:, rank * c : (rank + 1) * c]  # noqa: E731
    x_local = mine(x, CG).clone().requires_grad_(True)
    xu, pu, nu, wu, scale = gather_step(x_local, mine(pos, CP), mine(neg, CN), mine(w, CN))
    loss, info = drift_loss(xu, pu, nu, weight_neg=wu, affinity_floor=0.0)
    (loss.mean() * scale).backward()
    out = {"grad": x_local.grad.tolist(), "loss": loss.tolist(), "scale": info["scale"].item(), "env": env}
    out["dist"] = [dist.get_backend(), dist.get_rank(), dist.get_world_size()]
    Path(config["out"], f"rank{rank}.json").write_text(json.dumps(out))
    ray.train.report({"done": 1})


def test_gathered_drift_equals_single_process_drift_on_the_union(ray_cluster, tmp_path):
    import sys

    import ray.cloudpickle
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import test modules

    result = TorchTrainer(
        _worker,
        train_loop_config={"out": str(tmp_path)},
        scaling_config=ScalingConfig(num_workers=WORLD, resources_per_worker={"CPU": 1}),
        torch_config=TorchConfig(backend="gloo"),
        run_config=RunConfig(name="exchange", storage_path=str(tmp_path / "ray")),
    ).fit()
    assert result.error is None, result.error

    x, pos, neg, w = union_inputs()
    x = x.clone().requires_grad_(True)
    loss, info = drift_loss(x, pos, neg, weight_neg=w, affinity_floor=0.0)
    loss.mean().backward()
    for rank in range(WORLD):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["dist"] == ["gloo", rank, WORLD]
        env = got["env"]
        assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"]) == (str(rank), str(WORLD), str(rank))
        assert env["MASTER_ADDR"] and env["MASTER_PORT"].isdigit()
        assert torch.allclose(torch.tensor(got["loss"]), loss.detach(), rtol=1e-5)
        assert got["scale"] == pytest.approx(info["scale"].item(), rel=1e-6)
        # Each rank's loss is scaled by the world size; DDP's gradient averaging divides it back.
        grad = torch.tensor(got["grad"]) / WORLD
        assert torch.allclose(grad, x.grad[:, rank * CG : (rank + 1) * CG], rtol=1e-5, atol=1e-8)
