"""The drift field on the CPU with raydrift's kernels (:mod:`raydrift.method.native`): what
``drift_loss(..., compile=True)`` runs on CPU tensors. Same steps and outputs as
:func:`raydrift.method.drift.drift_field` (see its module docstring); the matmuls stay torch's, the
elementwise work (distances, energies, the softmaxes and cross-weighting at every temperature) is
``field.cpp``'s, one group at a time.

Memory: the direct path holds the targets ``y [G, N, S]``, the energies and one coefficient block
``[G, Cg, N]``, one force and the field ``[G, Cg, S]``; each temperature's force is folded into the field as
soon as its mean square is known. There the temporaries (all but the field) live in one reused buffer per
thread, as large as the largest call so far (:func:`release_scratch` frees it): a fresh allocation of tens
of MiB costs a page fault per 4 KiB on every call (a fifth of the per-location shape's time on the
project's machine), a reused one none. The Gram path (``N`` well below ``S``) keeps only ``y`` there; its
smaller blocks (the Gram matrix ``K = y y^T [G, N, N]``, the energies, the coefficient blocks
``[G, T, Cg, N]``) are fresh and freed before the field ``V = C @ y`` is formed from the combined
coefficients. The field is the call's own tensor: the backward scales it into the gradient in place, so
the kept buffer does not raise the call's peak.
"""

from __future__ import annotations

import math
import threading

import torch

from . import native
from .field_common import D2_FLOOR, FORCE_MS_FLOOR, SCALE_FLOOR, SELF_MASK, gram_is_cheaper, target_weights


def cpu_field(
    x: torch.Tensor,
    y_pos: torch.Tensor,
    y_neg: torch.Tensor,
    w_neg: torch.Tensor | None,
    *,
    taus: torch.Tensor,
    kernel: str,
    normalization: str,
    affinity_floor: float,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, torch.Tensor, dict[str, torch.Tensor]]:
    """``(V, C, y, s, info)`` exactly as :func:`raydrift.method.drift.drift_field` returns them."""
    G, Cg, S = x.shape
    Cn = y_neg.shape[1]
    k = Cg + Cn  # targets [:k] are negatives, [k:] positives
    T = taus.shape[0]
    N = Cg + Cn + y_pos.shape[1]
    gram = gram_is_cheaper(Cg, N, S, T)
    if gram:  # the small blocks fresh: they are freed before the field is formed
        (y_buf,) = _scratch((G, N, S))
        K_buf, d2_buf, coefs_buf = (x.new_empty(shape) for shape in ((G, N, N), (G, Cg, N), (G, T, Cg, N)))
    else:
        y_buf, d2_buf, coef, force = _scratch((G, N, S), (G, Cg, N), (G, 1, Cg, N), (G, Cg, S))
    y, y_sq = native.centred_targets(x, y_neg, y_pos, out=y_buf)

    # 1. Distances from one matmul: the products x.y, then |x|^2 + |y|^2 - 2 x.y, the self pair zero, and the
    # square root in place (the kernel).
    if gram:
        K = torch.bmm(y, y.transpose(1, 2), out=K_buf)  # [G, N, N]
        d2 = d2_buf.copy_(K[:, :Cg])  # K's first rows are the products
    else:
        d2 = torch.bmm(y[:, :Cg], y.transpose(1, 2), out=d2_buf)  # [G, Cg, N]
    w = target_weights(w_neg, G, Cg, N)

    # 2. One scale for the whole call: the target-weighted mean distance.
    total = native.distances(d2, y_sq, w, D2_FLOOR)
    scale = total / (Cg * (G * N if w is None else float(w.sum(dtype=torch.float64))))
    scale_t = torch.tensor(scale, dtype=torch.float32)
    s = (scale_t / math.sqrt(S)).clamp_min(SCALE_FLOOR)

    # 3. Normalised distance, self pair masked, the kernel's exponent (in place: d2 holds the energies now).
    native.energy(d2, 1.0 / max(float(scale_t), SCALE_FLOOR), SELF_MASK, kernel)

    # 4.-6. Force coefficients per temperature; field V = sum_t f_t / rms_t with f_t = c_t @ y / s.
    args = (k, normalization, affinity_floor)
    if gram:  # the mean squares from the Gram matrix, then V = C @ y in one product
        coefs = native.coefficients(d2, w, taus, *args, out=coefs_buf)
        cKc = d2  # the energies are spent: their block holds c_t K c_t entrywise
        raw_ms = [torch.bmm(coefs[:, t], K, out=cKc).mul_(coefs[:, t]).sum(dtype=torch.float64) for t in range(T)]
        force_ms = torch.stack(raw_ms).float() / (G * Cg * S) / s.square()
        weights = (force_ms.clamp_min(FORCE_MS_FLOOR).rsqrt() / s).tolist()
        C = cKc.copy_(coefs[:, 0]).mul_(weights[0])  # C = sum_t weight_t c_t, in the spent block again
        for t in range(1, T):
            C.add_(coefs[:, t], alpha=weights[t])
        del K, K_buf, coefs, coefs_buf
        V = torch.bmm(C, y)
        loss = native.sum_squares(V, G).float() / (Cg * S)
        return V, None, None, s, {"scale": scale_t, "force_ms": force_ms, "loss": loss}
    V = x.new_empty(G, Cg, S)  # returned (autograd keeps it for the backward): never scratch
    force_ms = x.new_empty(T)
    steps = []  # f_t / rms_t = (c_t @ y) * step_t
    for i in range(T):
        native.coefficients(d2, w, taus[i : i + 1], *args, out=coef)
        f = V if i == 0 else force  # the first force is kept in V, the others folded into it one by one
        native.bmm(coef.view(G, Cg, N), y, f)  # s * f_t
        force_ms[i] = native.sum_squares(f).float() / (G * Cg * S) / s.square()
        steps.append(float(force_ms[i].clamp_min(FORCE_MS_FLOOR).rsqrt() / s))
        if i > 0:  # the last fold also sums the field's squares per group (the loss)
            sq = native.axpby(V, steps[0] if i == 1 else 1.0, force, steps[i], G if i == T - 1 else 0)
    if T == 1:
        sq = native.axpby(V, steps[0], V, 0.0, G)
    loss = sq.float() / (Cg * S)
    return V, None, None, s, {"scale": scale_t, "force_ms": force_ms, "loss": loss}


_local = threading.local()


def release_scratch() -> None:
    """Free this thread's reused scratch buffer (the next call allocates it again)."""
    _local.buffer = None


def _scratch(*shapes: tuple[int, ...]) -> list[torch.Tensor]:
    """Views, one per shape, carved one after another from this thread's reused float32 buffer (grown, and
    then kept, to the largest call's size)."""
    sizes = [math.prod(shape) for shape in shapes]
    buf = getattr(_local, "buffer", None)
    if buf is None or buf.numel() < sum(sizes):
        _local.buffer = buf = None  # free the old one before allocating the larger one
        _local.buffer = buf = torch.empty(sum(sizes), dtype=torch.float32)
    return [part.view(shape) for part, shape in zip(buf[: sum(sizes)].split(sizes), shapes)]
