"""Sample-quality metrics: feature statistics, Frechet distance (FID), Inception Score, diversity.

Pure math on tensors (torch, numpy); no files except ``FeatureStats``' own npz, no networks, no logging.
The stages follow torch-fidelity: features -> ``FeatureStats`` -> ``frechet_distance``; and logits (or
probabilities) -> ``inception_score``. Which network made the features is the caller's business, but every
FID must travel with its provenance (``PROVENANCE_KEYS``): FIDs of different feature networks, sample
counts or reference splits are different metrics.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

import numpy as np
import torch

PROVENANCE_FEATURE_NET = "feature_net"  # FeatureNet.id, e.g. "inception-tf:pool3", "lenet:mnist:e2:1a2b3c4d"
PROVENANCE_NUM_SAMPLES = "num_samples"  # number of reference images behind the statistics
PROVENANCE_REFERENCE = "reference"  # "<dataset id>:<split>", e.g. "mnist:test"
PROVENANCE_KEYS: tuple[str, ...] = (PROVENANCE_FEATURE_NET, PROVENANCE_NUM_SAMPLES, PROVENANCE_REFERENCE)

ArrayLike = torch.Tensor | np.ndarray


def make_provenance(feature_net: str, num_samples: int, reference: str) -> dict[str, str | int]:
    """The protocol of an FID: two FIDs are comparable only if these dicts are equal."""
    return {
        PROVENANCE_FEATURE_NET: feature_net,
        PROVENANCE_NUM_SAMPLES: int(num_samples),
        PROVENANCE_REFERENCE: reference,
    }


class FeatureStats:
    """Streaming float64 first and second moments of features ``[N, d]``.

    Holds raw sums (``num``, ``sum [d]``, ``sum_outer [d, d]``) as in edm's ``fid.py``, so that statistics of
    batches, ranks or cached shards combine by addition: ``merge`` here, or a SUM all-reduce of every tensor
    in ``to_dict()``. The tensors live on the device of the first ``update`` (or ``device``).
    """

    STATE_KEYS: tuple[str, ...] = ("num", "sum", "sum_outer")

    def __init__(self, dim: int | None = None, device: torch.device | str = "cpu"):
        self._num = torch.zeros((), dtype=torch.float64, device=device)
        self._sum: torch.Tensor | None = None
        self._sum_outer: torch.Tensor | None = None
        if dim is not None:
            self._allocate(dim, torch.device(device))

    def _allocate(self, dim: int, device: torch.device) -> None:
        self._num = self._num.to(device)
        self._sum = torch.zeros(dim, dtype=torch.float64, device=device)
        self._sum_outer = torch.zeros(dim, dim, dtype=torch.float64, device=device)

    @property
    def num(self) -> int:
        return int(self._num.item())

    @property
    def dim(self) -> int | None:
        return None if self._sum is None else self._sum.shape[0]

    def update(self, feats: ArrayLike) -> FeatureStats:
        """Add features ``[N, d]`` (any float dtype, any device). Returns self."""
        x = torch.as_tensor(feats)
        if x.ndim != 2:
            raise ValueError(f"expected features [N, d], got shape {tuple(x.shape)}")
        if self._sum is None:
            self._allocate(x.shape[1], x.device)
        elif x.shape[1] != self.dim:
            raise ValueError(f"feature dim {x.shape[1]} != {self.dim}")
        x = x.to(device=self._sum.device, dtype=torch.float64)
        self._num += x.shape[0]
        self._sum += x.sum(dim=0)
        self._sum_outer += x.T @ x
        return self

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Add another statistics object in place (other ranks, batches or shards). Returns self."""
        if other._sum is None:
            return self
        return self._add_state(other.to_dict())

    def _add_state(self, state: Mapping[str, ArrayLike]) -> FeatureStats:
        s, so = (torch.as_tensor(state[k], dtype=torch.float64) for k in ("sum", "sum_outer"))
        if self._sum is None:
            self._allocate(s.shape[0], self._num.device)
        elif s.shape[0] != self.dim:
            raise ValueError(f"feature dim {s.shape[0]} != {self.dim}")
        self._num += torch.as_tensor(state["num"], dtype=torch.float64).to(self._num.device)
        self._sum += s.to(self._sum.device)
        self._sum_outer += so.to(self._sum.device)
        return self

    def mean(self) -> torch.Tensor:
        """Mean ``[d]``, float64."""
        self._check_num(1)
        return self._sum / self._num

    def cov(self) -> torch.Tensor:
        """Unbiased covariance ``[d, d]``, float64 (as ``np.cov(x, rowvar=False)``)."""
        self._check_num(2)
        mu = self.mean()
        c = (self._sum_outer - self._num * torch.outer(mu, mu)) / (self._num - 1)
        return (c + c.T) / 2  # x.T @ x from a gemm is symmetric only up to rounding

    def _check_num(self, n: int) -> None:
        if self._sum is None or self.num < n:
            raise ValueError(f"need at least {n} samples, have {0 if self._sum is None else self.num}")

    def to_dict(self) -> dict[str, torch.Tensor]:
        """The raw float64 sums as tensors (sum them across ranks with an all-reduce)."""
        if self._sum is None:
            raise ValueError("empty FeatureStats has no dimension yet")
        return {"num": self._num.clone(), "sum": self._sum.clone(), "sum_outer": self._sum_outer.clone()}

    @classmethod
    def from_dict(cls, state: Mapping[str, ArrayLike], device: torch.device | str = "cpu") -> FeatureStats:
        return cls(device=device)._add_state(state)

    def to_npz(self, path: str | os.PathLike, **extra: str | int | float) -> None:
        """Write the sums (plus scalar ``extra`` entries, e.g. provenance) atomically to ``path``."""
        arrays = {k: v.cpu().numpy() for k, v in self.to_dict().items()}
        arrays.update({k: np.asarray(v) for k, v in extra.items()})
        tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)  # concurrent writers (Ray workers) never leave a torn file

    @classmethod
    def from_npz(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> FeatureStats:
        with np.load(path) as f:
            return cls.from_dict({k: f[k] for k in cls.STATE_KEYS}, device=device)


def features_to_stats(feats: ArrayLike) -> FeatureStats:
    return FeatureStats().update(feats)


def trace_sqrt_product(cov1: ArrayLike, cov2: ArrayLike, method: Literal["auto", "cholesky", "eigh"] = "auto") -> float:
    """``tr sqrt(C1 C2)`` for symmetric PSD ``C1, C2 [d, d]``, in float64, from symmetric eigenvalues.

    ``C1 C2`` is similar to the symmetric PSD ``A^T C2 A`` for any factor ``C1 = A A^T``, so the trace is the
    sum of square roots of that matrix's eigenvalues (negative rounding noise clipped at 0). ``cholesky``
    takes ``A = L`` (needs one positive-definite covariance; the roles swap if only ``C2`` is), ``eigh``
    takes ``A = U sqrt(Lambda)`` from ``C1``'s eigendecomposition, eigenvalues under the rounding floor set
    to 0 (any PSD input, e.g. fewer samples than dims; ~2x slower at d = 2048). ``auto``: Cholesky if either
    factorises, else eigh. ``benchmarks/frechet.py`` times both against scipy's ``sqrtm``.
    """
    if method not in ("auto", "cholesky", "eigh"):
        raise ValueError(f"unknown method {method!r}")
    c1 = torch.as_tensor(cov1, dtype=torch.float64)
    c2 = torch.as_tensor(cov2, dtype=torch.float64).to(c1.device)
    a, c = None, c2
    if method != "eigh":
        for ca, cb in ((c1, c2), (c2, c1)):
            L, info = torch.linalg.cholesky_ex(ca)
            if info.item() == 0:
                a, c = L, cb
                break
        if a is None and method == "cholesky":
            raise ValueError("neither covariance is positive definite; use method='eigh'")
    if a is None:
        lam, U = torch.linalg.eigh(c1)
        # Eigenvalues under the rounding floor are noise; their square roots (~1e-8 each) would not cancel.
        floor = lam.max().clamp_min(0) * lam.shape[0] * torch.finfo(lam.dtype).eps
        a = U * torch.where(lam > floor, lam, 0).sqrt()
    m = a.T @ c @ a
    ev = torch.linalg.eigvalsh((m + m.T) / 2)
    return ev.clamp_min(0).sqrt().sum().item()


def frechet_distance(mu1: ArrayLike, cov1: ArrayLike, mu2: ArrayLike, cov2: ArrayLike) -> float:
    """``|mu1 - mu2|^2 + tr(C1) + tr(C2) - 2 tr sqrt(C1 C2)`` in float64 (not clipped at 0)."""
    mu1, mu2, c1, c2 = (torch.as_tensor(a, dtype=torch.float64) for a in (mu1, mu2, cov1, cov2))
    mu2, c2 = mu2.to(mu1.device), c2.to(mu1.device)
    diff = mu1 - mu2
    return (diff @ diff + c1.trace() + c2.trace()).item() - 2 * trace_sqrt_product(c1, c2)


def stats_to_fid(stats1: FeatureStats, stats2: FeatureStats) -> float:
    return frechet_distance(stats1.mean(), stats1.cov(), stats2.mean(), stats2.cov())


def fid_from_features(feats1: ArrayLike, feats2: ArrayLike) -> float:
    """Frechet distance between two feature sets ``[N1, d]`` and ``[N2, d]``."""
    return stats_to_fid(features_to_stats(feats1), features_to_stats(feats2))


def inception_score(
    probs_or_logits: ArrayLike, splits: int = 10, *, from_logits: bool | None = None
) -> tuple[float, float]:
    """Inception Score ``exp E_x KL(p(y|x) || p(y))`` of predictions ``[N, K]``: (mean, std) over splits.

    The splits are contiguous chunks (no shuffle) with ``p(y)`` estimated per chunk; std is the population
    std over chunks, as in the original code. ``from_logits=None`` treats the input as probabilities if it
    is non-negative with rows summing to 1, else as logits.
    """
    z = torch.as_tensor(probs_or_logits, dtype=torch.float64)
    if z.ndim != 2 or z.shape[0] < splits:
        raise ValueError(f"expected [N >= splits, K] predictions, got shape {tuple(z.shape)}")
    if from_logits is None:
        from_logits = not (bool((z >= 0).all()) and bool(((z.sum(dim=1) - 1).abs() < 1e-4).all()))
    if from_logits:
        log_p = z.log_softmax(dim=1)
        p = log_p.exp()
    else:
        p = z / z.sum(dim=1, keepdim=True)
        log_p = p.log()
    n = z.shape[0]
    scores = []
    for i in range(splits):
        chunk = slice(i * n // splits, (i + 1) * n // splits)
        p_i, log_p_i = p[chunk], log_p[chunk]
        log_q = p_i.mean(dim=0).log()
        kl = torch.where(p_i > 0, p_i * (log_p_i - log_q), 0.0).sum(dim=1)  # 0 log 0 = 0
        scores.append(kl.mean().exp().item())
    return float(np.mean(scores)), float(np.std(scores))


def within_class_diversity(x: ArrayLike, labels: ArrayLike, chunk_size: int = 1024) -> float:
    """Mean L2 distance between distinct samples of one class, averaged over classes.

    ``x [N, ...]`` is flattened to ``[N, D]``; ``labels [N]`` integer classes; classes with fewer than two
    samples are skipped. A collapsed generator scores ~0. The classes are padded into one ``[K, n_max, D]``
    batch: one batched ``cdist`` per chunk of ``chunk_size`` rows, no loop over classes or pairs. float64,
    so that the matmul form of ``cdist`` resolves near-duplicates (float32 rounding alone gives ~1e-2).
    """
    x = torch.as_tensor(x)
    x = x.reshape(x.shape[0], -1).to(torch.float64)
    labels = torch.as_tensor(labels, device=x.device).long()
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    if not bool((counts >= 2).any()):
        raise ValueError("no class has two or more samples")
    order = torch.argsort(inverse, stable=True)
    slot = torch.arange(x.shape[0], device=x.device) - (torch.cumsum(counts, 0) - counts)[inverse[order]]
    n_max = int(counts.max())
    xg = x.new_zeros(len(counts), n_max, x.shape[1])  # [K, n_max, D], class k in rows < counts[k]
    xg[inverse[order], slot] = x[order]
    cols = torch.arange(n_max, device=x.device)
    valid = cols < counts[:, None]  # [K, n_max]
    total = x.new_zeros(len(counts))
    for i in range(0, n_max, chunk_size):
        rows = cols[i : i + chunk_size]
        d = torch.cdist(xg[:, rows], xg)  # [K, c, n_max]
        mask = valid[:, rows, None] & valid[:, None, :] & (rows[:, None] != cols)  # distinct pairs only
        total += (d * mask).sum(dim=(1, 2))
    keep = counts >= 2
    pairs = counts[keep].double() * (counts[keep].double() - 1)
    return (total[keep] / pairs).mean().item()
