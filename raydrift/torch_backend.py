"""Ray Train's torch backend, set up without importing torch where no training happens.

``ray.train.torch.TorchTrainer`` and its ``TorchConfig`` live in modules that import torch (~1.9 s here),
and their objects travel to Train's controller, so the Tune trial's driver *and* the controller each import
torch before the first worker starts: two of the serial steps between a trial's start and its first
training step (``benchmarks/ray_overhead.py``). This backend does what ``TorchConfig``'s does for CPU (gloo)
and GPU (nccl) training, in the same order and with Ray's own worker-side helpers, but only the workers
import torch: the controller just tells them what to run. ``make_trainer`` uses it with Train's
``DataParallelTrainer``, which is what ``TorchTrainer`` is (a ``DataParallelTrainer`` with a torch backend).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import ray
from ray.train.backend import Backend, BackendConfig
from ray.train.v2._internal.util import TrainingFramework

logger = logging.getLogger(__name__)


@dataclass
class TorchBackendConfig(BackendConfig):
    """``TorchConfig`` for gloo or nccl with ``env://`` initialisation, importable without torch."""

    backend: str = "gloo"
    timeout_s: int = 1800

    def __post_init__(self) -> None:
        if self.backend not in ("gloo", "nccl"):
            raise ValueError(f"backend must be gloo (CPU) or nccl (GPU), got {self.backend!r}")

    @property
    def backend_cls(self):
        return _LazyTorchBackend

    @property
    def train_func_context(self):
        return _CudaDeviceContext

    @property
    def framework(self):
        return TrainingFramework.TORCH

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "init_method": "env", "timeout_s": self.timeout_s}


class _LazyTorchBackend(Backend):
    share_cuda_visible_devices = True  # as Ray's: workers on one node see each other's GPUs (NCCL needs it)

    def on_start(self, worker_group, backend_config: TorchBackendConfig) -> None:
        from ray.train._internal.utils import get_address_and_port

        addr, port = worker_group.execute_single(0, get_address_and_port)
        worker_group.execute(_set_env, addr=addr, port=port)
        n = len(worker_group)
        ray.get(
            [
                worker_group.execute_single_async(
                    rank,
                    _init_process_group,
                    backend=backend_config.backend,
                    world_rank=rank,
                    world_size=n,
                    timeout_s=backend_config.timeout_s,
                )
                for rank in range(n)
            ]
        )

    def on_shutdown(self, worker_group, backend_config: TorchBackendConfig) -> None:
        from ray._private.ray_constants import env_integer
        from ray.exceptions import GetTimeoutError
        from ray.train.constants import (
            DEFAULT_TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S,
            TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S,
        )

        futures = worker_group.execute_async(_shutdown, destroy_process_group=len(worker_group) > 1)
        timeout_s = env_integer(TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S, DEFAULT_TORCH_PROCESS_GROUP_SHUTDOWN_TIMEOUT_S)
        try:
            ray.get(futures, timeout=timeout_s)
        except GetTimeoutError:  # as Ray's torch backend: the workers are being torn down anyway
            logger.warning(f"torch process group shutdown timed out after {timeout_s} s")


# ---- run on the workers (which import torch to train anyway)


def _set_env(addr: str, port: int) -> None:
    from ray.train.torch.config import _set_torch_distributed_env_vars

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = addr, str(port)
    _set_torch_distributed_env_vars()  # RANK, WORLD_SIZE, LOCAL_RANK, ... as torchrun sets them


def _init_process_group(backend: str, world_rank: int, world_size: int, timeout_s: int) -> None:
    from ray.train.torch.config import _setup_torch_process_group

    _setup_torch_process_group(backend, world_rank, world_size, "env://", timeout_s)


def _shutdown(destroy_process_group: bool) -> None:
    from ray.train.torch.config import _shutdown_torch

    _shutdown_torch(destroy_process_group=destroy_process_group)


class _CudaDeviceContext:
    """Around the training function: make this worker's GPU the current CUDA device (as ``TorchConfig``)."""

    def __enter__(self) -> None:
        from ray.train.torch.config import TorchConfigContextManager

        TorchConfigContextManager().__enter__()

    def __exit__(self, *exc) -> bool:
        return False
