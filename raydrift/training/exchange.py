"""Sample exchange across data-parallel workers: per-class sets that grow with the number of workers.

With ``drift.exchange=gather`` every rank all-gathers the step's generated samples, positives and extra
negatives (all ranks draw the same classes), so each class's drift is computed on the union of all
ranks' sets. Only the local samples carry gradients; the loss is scaled by the world size so that, after
DDP averages gradients over ranks, each parameter gets exactly the gradient of the single-process loss
on the union (the loss is a mean over the union's samples).
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def gather_groups(t: torch.Tensor | None, *, keep_local_grad: bool = False) -> torch.Tensor | None:
    """``[G, C, ...]`` on each rank -> ``[G, world * C, ...]`` ordered by rank (dim 1 concatenation).

    With ``keep_local_grad`` this rank's slice is the input tensor itself (its autograd graph kept).
    """
    if t is None:
        return None
    world, rank = dist.get_world_size(), dist.get_rank()
    parts = [torch.empty_like(t) for _ in range(world)]
    dist.all_gather(parts, t.detach().contiguous())
    if keep_local_grad:
        parts[rank] = t
    return torch.cat(parts, dim=1)


def gather_step(
    x: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor | None, w_neg: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None, int]:
    """The union of every rank's groups, and the loss scale (the world size)."""
    return (
        gather_groups(x, keep_local_grad=True),
        gather_groups(pos),
        gather_groups(neg),
        gather_groups(w_neg),
        dist.get_world_size(),
    )
