"""What the drift field's two implementations share (torch: :func:`raydrift.method.drift.drift_field`; CPU
kernels: :func:`raydrift.method.field_cpu.cpu_field`): the reference's constants, the centred targets and
the targets' weights and the choice between the Gram and the direct path."""

from __future__ import annotations

import torch

OFFICIAL_AFFINITY_FLOOR = 1e-3  # sqrt of the authors' clamp(softmax_row * softmax_col, 1e-6)
SELF_MASK = 100.0  # added to the normalised self distance
D2_FLOOR = 1e-8  # squared-distance floor before the square root, as in the reference
SCALE_FLOOR = 1e-3
FORCE_MS_FLOOR = 1e-8


def centred_targets(x: torch.Tensor, y_neg: torch.Tensor, y_pos: torch.Tensor) -> torch.Tensor:
    """``[x, y_neg, y_pos]`` minus their mean, written in one pass (distances and forces are translation
    invariant; centring keeps ``|x|^2 + |y|^2 - 2 x.y`` accurate in float32 when the data sit off zero)."""
    parts = [p for p in (x, y_neg, y_pos) if p.shape[1]]
    sizes = [p.shape[1] for p in parts]
    total = parts[0].sum(1, keepdim=True)
    for p in parts[1:]:
        total = total + p.sum(1, keepdim=True)
    mean = total / sum(sizes)
    if torch.compiler.is_compiling():  # the compiler fuses the subtractions into the concatenation
        return torch.cat([p - mean for p in parts], dim=1)
    y = x.new_empty(x.shape[0], sum(sizes), x.shape[2])
    for p, block in zip(parts, y.split(sizes, dim=1)):
        torch.sub(p, mean, out=block)
    return y


def gram_is_cheaper(Cg: int, N: int, S: int, T: int) -> bool:
    """Multiply-adds: Gram ``y y^T`` + norms ``c K c^T`` + one ``c @ y``, against distances + ``T`` forces."""
    return N * N * S + T * Cg * N * N + Cg * N * S < (1 + T) * Cg * N * S


def target_weights(w_neg: torch.Tensor | None, G: int, Cg: int, N: int) -> torch.Tensor | None:
    """Each target's kernel weight ``[G, N]``: 1 for the samples and positives, ``w_neg [G, Cn]`` for the
    extra negatives between them; None (all 1) without ``w_neg``."""
    if w_neg is None:
        return None
    return torch.cat([w_neg.new_ones(G, Cg), w_neg, w_neg.new_ones(G, N - Cg - w_neg.shape[1])], dim=1)
