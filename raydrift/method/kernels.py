"""The registries of kernels and kernel normalisations: adding one is one entry here plus its test.

A kernel turns the normalised distance ``d [G, Cg, N]`` into an *energy* ``e`` with ``k(d) = exp(-e / tau)``;
a normalisation turns the logits ``-e / tau`` into affinities ``[G, Cg, N]`` (targets ``[:k]`` are negatives,
``[k:]`` positives). Both work in place where they can and use tensor methods only, so this module imports
without torch (the config reads the names from here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Tensor = Any  # torch.Tensor; not imported here so that the config can read the names cheaply


@dataclass(frozen=True)
class KernelSpec:
    energy: Callable[[Tensor], Tensor]  # normalised distance -> energy (may work in place)
    description: str


@dataclass(frozen=True)
class NormalizationSpec:
    affinity: Callable[[Tensor, int], Tensor]  # (logits, k) -> affinity; may reuse the logits' storage
    description: str


def _xy(logits: Tensor, k: int) -> Tensor:
    """Geometric mean of the softmax over targets and the softmax over generated samples (the paper's)."""
    lse_targets = logits.logsumexp(dim=2, keepdim=True)
    lse_samples = logits.logsumexp(dim=1, keepdim=True)
    return logits.sub_(lse_targets.mul_(0.5)).sub_(lse_samples.mul_(0.5)).exp_()


def _y(logits: Tensor, k: int) -> Tensor:
    """Separate softmaxes over the negatives and over the positives."""
    lse_neg = logits[..., :k].logsumexp(dim=2, keepdim=True)
    lse_pos = logits[..., k:].logsumexp(dim=2, keepdim=True)
    logits[..., :k].sub_(lse_neg)
    logits[..., k:].sub_(lse_pos)
    return logits.exp_()


KERNELS: dict[str, KernelSpec] = {
    "laplace": KernelSpec(lambda d: d, "exp(-d / tau), the paper's (the experiment report's 'l2')"),
    "gaussian": KernelSpec(lambda d: d.square_().mul_(0.5), "exp(-d^2 / (2 tau)) on the normalised distance"),
}

NORMALIZATIONS: dict[str, NormalizationSpec] = {
    "xy": NormalizationSpec(_xy, "softmax over targets and over samples, geometric mean (the paper's)"),
    "y": NormalizationSpec(_y, "softmax over positives and over negatives separately"),
    "none": NormalizationSpec(lambda logits, k: logits.exp_(), "raw kernel weights"),
}
