"""The drifting field and its regression loss (Deng et al. 2026, "Generative Modeling via Drifting").

Pure torch, no I/O. One call handles a whole feature key: ``G`` groups (classes x locations), each with
``Cg`` generated samples ``x``, ``Cp`` positives ``y_pos`` and ``Cn`` extra negatives ``y_neg`` of
dimension ``S``. The generated samples are negatives too, with the self pair masked.

The default options reproduce the authors' reference code exactly (pinned by
``../shared/golden/drift_official_public.npz``; see ``tests/test_drift_golden.py``):

1. L2 distances (not squared) from every ``x`` to every target ``[x, y_neg, y_pos]``;
2. one scalar ``scale``: the target-weighted mean distance over the whole call;
3. distances divided by ``scale``; the self pair gets +100;
4. per temperature ``tau``: logits ``-d / tau``; affinity ``sqrt(softmax_targets * softmax_samples)``,
   floored at ``1e-3`` (the authors' ``clamp(., 1e-6)`` before the square root), times the target weight;
5. attraction and repulsion cross-weighted by each other's row sums; the force is the weighted sum of
   target positions (its coefficients sum to zero, so it equals the weighted sum of displacements);
6. each temperature's force divided by its RMS over the whole call, summed over temperatures;
7. loss: mean over samples and dims of ``(x / s - sg(x / s + V))^2`` with ``s = scale / sqrt(S)``.

The field is always computed in full float32 (:func:`full_float32`: autocast and TF32 off), also inside a
bf16 training step; only the regression's gradient takes the generated samples' dtype.

Speed notes. Distances come from one batched matmul on group-centred data; the row and column
softmaxes, the affinity and the coefficients live on ``[G, Cg, N]`` only (never ``[G, Cg, T, S]``);
the target is detached, so the backward is the closed form ``-2 V / (s Cg S)`` and autograd keeps only
``V`` (or what forms it). The field is linear in the coefficients, ``V = (sum_t c_t / rms_t) @ y / s``:
when few samples live in many dimensions (``N`` well below ``S``, e.g. MNIST pixels) the forces' mean
squares come from the Gram matrix ``K = y y^T`` (``|c y|^2 = c K c^T``, whose first rows are also the
distances' products), and so does the loss ``mean(V^2)``: the forward never forms ``V``, and the backward
forms the gradient, a multiple of ``V = C @ y``, in one product written straight into it. Otherwise each
temperature's force is one product and its mean square is taken directly (the cheaper of the two by
multiply-adds). The targets are concatenated and centred in one pass (fused by the compiler).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence

import torch

from . import native
from .field_common import (
    D2_FLOOR,
    FORCE_MS_FLOOR,
    OFFICIAL_AFFINITY_FLOOR,
    SCALE_FLOOR,
    SELF_MASK,
    centred_targets,
    gram_is_cheaper,
    target_weights,
)
from .field_cpu import cpu_field
from .kernels import KERNELS, NORMALIZATIONS


def anneal_temperatures(
    temperatures: Sequence[float], step: int, rate: float = 0.0, floor: float = 0.0
) -> tuple[float, ...]:
    """Temperature schedule ``tau(t) = max(tau0 * exp(-rate * t), floor)``; ``rate = 0`` keeps ``tau0``."""
    if rate < 0:
        raise ValueError(f"annealing rate must be >= 0, got {rate}")
    return tuple(max(float(t) * math.exp(-rate * step), floor) for t in temperatures)


class _Regress(torch.autograd.Function):
    """Per-group ``mean((x / s - sg(x / s + V))^2)`` with the closed-form gradient ``-2 V / (s Cg S)``.

    ``field`` is ``V`` itself or, on the Gram path, the pair ``(C, y)`` with ``V = C @ y``: there the
    forward needs only the loss (a quadratic form in the Gram matrix) and the backward forms ``V``'s
    multiple in one product, written straight into the gradient.
    """

    @staticmethod
    def forward(ctx, gen, loss, s, V, C, y):  # noqa: N803
        ctx.save_for_backward(s, *((V,) if V is not None else (C, y)))
        ctx.gen_dtype, ctx.lazy = gen.dtype, V is None
        ctx.Cg, ctx.S = gen.shape[1], gen.shape[2]
        return loss  # mean(V^2) per group, computed with the field

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        if getattr(ctx, "done", False):
            raise RuntimeError(
                "drift_loss: a second backward pass through the same loss (retain_graph=True); its field "
                "becomes the gradient in place in the first one. Compute the loss again for another pass."
            )
        s, *field = ctx.saved_tensors
        factor = (grad_loss.float() * (-2.0 / (ctx.Cg * ctx.S)) / s)[:, None, None]
        if ctx.lazy:
            with full_float32(s.device):  # the product is the field's: no TF32, no autocast
                grad = torch.bmm(field[0] * factor, field[1])
        else:  # V is the field's own tensor, used only here: scaled in place, no second [G, Cg, S] block
            grad = field[0].mul_(factor)
            ctx.done = True
        return grad.to(ctx.gen_dtype), None, None, None, None, None


def drift_loss(
    gen: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor | None = None,
    *,
    weight_neg: torch.Tensor | None = None,
    temperatures: Sequence[float] = (0.02, 0.05, 0.2),
    kernel: str = "laplace",
    normalization: str = "xy",
    affinity_floor: float = OFFICIAL_AFFINITY_FLOOR,
    compile: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Drifting loss of one feature key.

    Args:
        gen: ``[G, Cg, S]`` generated samples (gradients flow into these only).
        pos: ``[G, Cp, S]`` positives (data).
        neg: ``[G, Cn, S]`` extra negatives (e.g. unconditional real samples for CFG), or None.
        weight_neg: ``[G, Cn]`` kernel weight of each extra negative (default 1).
        temperatures: kernel bandwidths on the normalised distance; any non-empty tuple.
        kernel: ``laplace`` ``exp(-d / tau)`` (the paper's) or ``gaussian`` ``exp(-d^2 / (2 tau))``.
        normalization: ``xy`` (softmax over targets and over samples, geometric mean; the paper's),
            ``y`` (separate softmaxes over positives and over negatives) or ``none`` (raw kernel).
        affinity_floor: lower bound on the affinity before target weights; the default reproduces the
            authors' code, 0 gives the exact log-space affinity.
        compile: compute the field with fused kernels: on CPU raydrift's own (:mod:`.native`, built with
            the system C++ compiler on first use; see :mod:`.field_cpu`), elsewhere ``torch.compile``
            (also the CPU's fallback where those cannot be built; eager, with a warning, where no compiler
            works). Temperatures are passed as a tensor, so annealing them does not recompile.

    Returns:
        ``loss [G]`` (float32) and ``info`` with ``scale []`` (the shared distance scale) and
        ``force_ms [T]`` (raw mean square of each temperature's force before normalisation).
    """
    _check_inputs(gen, pos, neg, weight_neg, temperatures, kernel, normalization, affinity_floor)
    G, _, S = gen.shape
    if neg is None:
        neg = gen.new_zeros(G, 0, S)
    taus = torch.tensor([float(t) for t in temperatures], dtype=torch.float32, device=gen.device)
    if not compile:
        field = drift_field
    elif native.supports(gen, kernel, normalization):
        field = cpu_field
    else:
        field = _compiled_field(_serial(gen.shape, pos.shape[1], neg.shape[1], len(taus)))
    with torch.no_grad(), full_float32(gen.device):
        V, C, y, s, info = field(
            gen.detach().float(),
            pos.detach().float(),
            neg.detach().float(),
            None if weight_neg is None else weight_neg.detach().float(),
            taus=taus,
            kernel=kernel,
            normalization=normalization,
            affinity_floor=affinity_floor,
        )
    loss = info.pop("loss")
    return _Regress.apply(gen, loss, s, V, C, y), info


def drift_field(
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
    """``(V, C, y, s, info)``: the normalised field ``V [G, Cg, S]`` (in units of ``s``) or, on the Gram
    path, ``V = C @ y`` left unformed (``V`` None; ``C [G, Cg, N]``, ``y [G, N, S]``), the input scale
    ``s`` and ``info``.

    Float32 tensors without grad; ``taus [T]`` the temperatures. See the module docstring for the steps.
    ``info`` also holds ``loss [G]``, the regression loss ``mean(V^2)`` per group.
    """
    G, Cg, S = x.shape
    Cn = y_neg.shape[1]
    k = Cg + Cn  # targets [:k] are negatives, [k:] positives
    T = taus.shape[0]
    N = Cg + Cn + y_pos.shape[1]
    y = centred_targets(x, y_neg, y_pos)  # [G, N, S]
    gram = gram_is_cheaper(Cg, N, S, T)

    # 1. Distances from one matmul: |x|^2 + |y|^2 - 2 x.y, the self pair exactly zero.
    if gram:  # the whole Gram matrix: its first Cg rows give the distances, all of it the forces' norms
        K = torch.bmm(y, y.transpose(1, 2))  # [G, N, N]
        y_sq = K.diagonal(dim1=1, dim2=2)
        d2 = (y_sq[:, :Cg, None] + y_sq[:, None, :]).sub_(K[:, :Cg], alpha=2.0)
    else:
        y_sq = y.square().sum(-1)  # [G, N]
        d2 = torch.baddbmm(y_sq[:, None, :], y[:, :Cg], y.transpose(1, 2), alpha=-2.0)
        d2.add_(y_sq[:, :Cg, None])
    d2[:, :, :Cg].diagonal(dim1=1, dim2=2).zero_()
    dist = d2.clamp_min_(D2_FLOOR).sqrt_()  # [G, Cg, N]

    # 2. One scale for the whole call: target-weighted mean distance.
    w = target_weights(w_neg, G, Cg, N)  # [G, N] or None
    scale = dist.mean() if w is None else (dist.sum(1) * w).sum() / (Cg * w.sum())
    s = (scale / math.sqrt(S)).clamp_min(SCALE_FLOOR)

    # 3. Normalised distance, self pair masked; the kernel's exponent without 1/tau.
    energy = dist.div_(scale.clamp_min(SCALE_FLOOR))
    energy[:, :, :Cg].diagonal(dim1=1, dim2=2).add_(SELF_MASK)
    energy = KERNELS[kernel].energy(energy)

    # 4.-6. Per temperature the force coefficients c [G, Cg, N] (force f = c @ y / s) and the force's mean
    # square; the field is linear in the coefficients: V = sum_t f_t / rms_t = (sum_t c_t / rms_t) @ y / s.
    if gram:  # mean squares and the loss from the Gram matrix; V = C @ y is formed in the backward only
        coefs = torch.stack([_coefficients(energy, taus[i], k, w, normalization, affinity_floor) for i in range(T)], 1)
        cK = torch.bmm(coefs.view(G, T * Cg, N), K).view(G, T, Cg, N)  # c_t K
        force_ms = (cK * coefs).sum((0, 2, 3)) / (G * Cg * S) / s.square()
        weights = (force_ms.clamp_min(FORCE_MS_FLOOR).rsqrt() / s)[None, :, None, None]
        C = (coefs * weights).sum(1)  # V = C @ y
        loss = ((cK * weights).sum(1) * C).sum((1, 2)).clamp_min(0) / (Cg * S)  # |C y|^2 = C K C^T
        return None, C, y, s, {"scale": scale, "force_ms": force_ms, "loss": loss}
    V = torch.zeros_like(y[:, :Cg])
    force_ms = []
    for i in range(T):
        f = torch.bmm(_coefficients(energy, taus[i], k, w, normalization, affinity_floor), y).div_(s)
        ms = f.square().mean()
        force_ms.append(ms)
        V.addcdiv_(f, ms.clamp_min(FORCE_MS_FLOOR).sqrt())
    return V, None, None, s, {"scale": scale, "force_ms": torch.stack(force_ms), "loss": V.square().mean((1, 2))}


def _coefficients(
    energy: torch.Tensor, tau: torch.Tensor, k: int, w: torch.Tensor | None, normalization: str, floor: float
) -> torch.Tensor:
    """Force coefficients ``[G, Cg, N]`` at temperature ``tau``: affinities, cross-weighted (step 5)."""
    a = _affinity(energy, tau, k, normalization, floor)
    if w is not None:
        a.mul_(w[:, None, :])
    # Repulsion scaled by total attraction and vice versa; the coefficients sum to 0 per sample, so the
    # force needs no "- x" term.
    a_neg, a_pos = a[..., :k], a[..., k:]
    sum_pos = a_pos.sum(-1, keepdim=True)
    sum_neg = a_neg.sum(-1, keepdim=True)
    a_neg.mul_(sum_pos.neg())
    a_pos.mul_(sum_neg)
    return a


def _affinity(energy: torch.Tensor, tau: torch.Tensor, k: int, normalization: str, floor: float) -> torch.Tensor:
    """Affinity ``[G, Cg, N]`` at temperature ``tau``, computed in log space."""
    logits = energy * (-1.0 / tau)  # a new tensor: energy is reused for every temperature
    a = NORMALIZATIONS[normalization].affinity(logits, k)
    return a.clamp_min_(floor) if floor > 0 else a


def _check_inputs(gen, pos, neg, weight_neg, temperatures, kernel, normalization, affinity_floor) -> None:
    if gen.dim() != 3 or pos.dim() != 3:
        raise ValueError(f"gen and pos must be [G, C, S]; got {tuple(gen.shape)} and {tuple(pos.shape)}")
    G, Cg, S = gen.shape
    if pos.shape[0] != G or pos.shape[2] != S or pos.shape[1] < 1:
        raise ValueError(f"pos {tuple(pos.shape)} does not match gen {tuple(gen.shape)}: need [G, Cp>=1, S]")
    if Cg < 2:
        raise ValueError(f"need at least 2 generated samples per group (the self pair is masked), got {Cg}")
    if neg is not None and (neg.dim() != 3 or neg.shape[0] != G or neg.shape[2] != S):
        raise ValueError(f"neg {tuple(neg.shape)} does not match gen {tuple(gen.shape)}: need [G, Cn, S]")
    if weight_neg is not None:
        Cn = 0 if neg is None else neg.shape[1]
        if tuple(weight_neg.shape) != (G, Cn):
            raise ValueError(f"weight_neg must be [G, Cn] = {(G, Cn)}, got {tuple(weight_neg.shape)}")
    if len(temperatures) == 0 or any(float(t) <= 0 for t in temperatures):
        raise ValueError(f"temperatures must be a non-empty tuple of positive numbers, got {temperatures}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")
    if affinity_floor < 0:
        raise ValueError(f"affinity_floor must be >= 0, got {affinity_floor}")


_COMPILED: dict[str, object] = {}
_SERIAL_BELOW = 1 << 20  # affinity entries (G * Cg * N * T) under which the fused loops run on one thread


@contextlib.contextmanager
def full_float32(device: torch.device) -> Iterator[None]:
    """Autocast off and, on CUDA, no TF32 for float32 matmuls: the field is computed in full float32 even
    inside a bf16 training step (``train.precision=bf16``) or with ``train.tf32`` on."""
    with torch.autocast(device.type, enabled=False):
        if device.type != "cuda":
            yield
            return
        previous = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(previous)


def _serial(shape: torch.Size, Cp: int, Cn: int, T: int) -> bool:  # noqa: N803
    """Whether the compiled elementwise loops should run on one thread (matmuls stay multi-threaded).

    Below ~1M affinity entries a parallel loop is shorter than its fork and barrier, and every loop of
    the fused kernel has one: on a busy machine a descheduled thread stalls each of them.
    """
    G, Cg, _ = shape
    return G * Cg * (Cg + Cp + Cn) * T < _SERIAL_BELOW


def _compiled_field(serial: bool = False):
    """``drift_field`` under ``torch.compile``, built once; eager (with a warning) if compiling fails."""
    key = "serial" if serial else "field"
    if key not in _COMPILED:
        warnings.filterwarnings("ignore", message=".*_prims_common.check.*", category=FutureWarning)
        compiled = torch.compile(drift_field, dynamic=False, options={"cpp.threads": 1} if serial else None)

        def field(*args, **kwargs):
            if _COMPILED.get("broken"):
                return drift_field(*args, **kwargs)
            try:
                return compiled(*args, **kwargs)
            except Exception as err:  # no working C++ compiler, unsupported backend, ...
                warnings.warn(f"torch.compile of the drift field failed ({err!r:.200}); using eager", stacklevel=3)
                _COMPILED["broken"] = True
                return drift_field(*args, **kwargs)

        _COMPILED[key] = field
    return _COMPILED[key]
