"""Metric math against slow references: scipy's sqrtm FID, np.cov, torch-fidelity's IS, a naive pair loop."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch_fidelity.metric_isc import isc_features_to_metric

from raydrift.evaluation.metrics import (
    FeatureStats,
    fid_from_features,
    frechet_distance,
    inception_score,
    trace_sqrt_product,
    within_class_diversity,
)


def random_features(n: int, d: int, seed: int) -> np.ndarray:
    """Correlated, shifted Gaussian features ``[n, d]``: well-conditioned covariance for n >> d."""
    rng = np.random.default_rng(seed)
    mix = np.eye(d) + rng.standard_normal((d, d)) / (2 * np.sqrt(d))
    return rng.standard_normal((n, d)) @ mix + rng.standard_normal(d)


def fid_sqrtm(f1: np.ndarray, f2: np.ndarray) -> float:
    """The pytorch-fid / TTUR formula, with scipy's Schur-based matrix square root."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    c1, c2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(c1 @ c2).real
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(c1) + np.trace(c2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("d", [16, 64, 256])
@pytest.mark.parametrize("method", ["auto", "eigh"])
def test_frechet_matches_sqrtm(d, method):
    f1, f2 = random_features(4 * d, d, 0), random_features(4 * d, d, 1)
    ref = fid_sqrtm(f1, f2)
    mu1, mu2 = f1.mean(0), f2.mean(0)
    c1, c2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    tr = trace_sqrt_product(c1, c2, method=method)
    fd = mu1 @ mu1 - 2 * mu1 @ mu2 + mu2 @ mu2 + np.trace(c1) + np.trace(c2) - 2 * tr
    assert fd == pytest.approx(ref, rel=1e-6)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(ref, rel=1e-6)
    assert fid_from_features(torch.from_numpy(f1), torch.from_numpy(f2)) == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("n, d", [(300, 64), (20, 64)])  # full rank (Cholesky path) and rank-deficient (eigh)
def test_frechet_identical_is_zero(n, d):
    f = random_features(n, d, 2)
    assert abs(fid_from_features(f, f)) < 1e-8


def test_frechet_symmetric_and_cholesky_role_swap():
    f1, f2 = random_features(200, 32, 3), random_features(20, 32, 4)  # only f1's covariance is PD
    s1, s2 = FeatureStats().update(f1), FeatureStats().update(f2)
    ab = frechet_distance(s1.mean(), s1.cov(), s2.mean(), s2.cov())
    ba = frechet_distance(s2.mean(), s2.cov(), s1.mean(), s1.cov())
    assert ab == pytest.approx(ba, rel=1e-10)
    assert trace_sqrt_product(s2.cov(), s1.cov(), method="eigh") == pytest.approx(
        trace_sqrt_product(s2.cov(), s1.cov(), method="cholesky"), rel=1e-8
    )
    with pytest.raises(ValueError):
        trace_sqrt_product(s2.cov(), s2.cov(), method="cholesky")


def test_stats_match_numpy_and_are_batch_size_independent():
    f = random_features(257, 24, 5).astype(np.float32)
    one_shot = FeatureStats().update(f)
    np.testing.assert_allclose(one_shot.mean().numpy(), f.astype(np.float64).mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(one_shot.cov().numpy(), np.cov(f, rowvar=False), rtol=1e-10, atol=1e-12)
    for chunk in (1, 7, 100):
        streamed = FeatureStats()
        for i in range(0, len(f), chunk):
            streamed.update(torch.from_numpy(f[i : i + chunk]))
        assert streamed.num == len(f)
        torch.testing.assert_close(streamed.mean(), one_shot.mean(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(streamed.cov(), one_shot.cov(), rtol=1e-10, atol=1e-12)


def test_stats_merge_equals_concatenation_and_round_trips(tmp_path):
    a, b = random_features(50, 8, 6), random_features(31, 8, 7)
    both = FeatureStats().update(np.concatenate([a, b]))
    merged = FeatureStats().merge(FeatureStats().update(a)).merge(FeatureStats().update(b))
    merged.merge(FeatureStats())  # empty: a no-op
    assert merged.num == both.num == 81
    torch.testing.assert_close(merged.cov(), both.cov(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(merged.mean(), both.mean(), rtol=1e-12, atol=1e-12)

    # An all-reduce is a sum over ranks of every tensor in to_dict().
    states = [FeatureStats().update(a).to_dict(), FeatureStats().update(b).to_dict()]
    reduced = FeatureStats.from_dict({k: states[0][k] + states[1][k] for k in FeatureStats.STATE_KEYS})
    torch.testing.assert_close(reduced.cov(), both.cov(), rtol=1e-12, atol=1e-12)

    both.to_npz(tmp_path / "s.npz", reference="x:test")
    loaded = FeatureStats.from_npz(tmp_path / "s.npz")
    assert loaded.num == 81 and torch.equal(loaded.cov(), both.cov())
    with pytest.raises(ValueError):
        FeatureStats().update(a).merge(FeatureStats().update(random_features(5, 3, 8)))


def test_inception_score_of_confident_uniform_predictions_is_num_classes():
    K, n = 10, 1000
    onehot = torch.nn.functional.one_hot(torch.arange(n) % K, K).double()
    mean, std = inception_score(onehot, splits=10)
    assert mean == pytest.approx(K, rel=1e-12) and std == pytest.approx(0, abs=1e-12)
    assert inception_score(60 * onehot)[0] == pytest.approx(K, rel=1e-12)  # as logits
    assert inception_score(torch.full((n, K), 1 / K))[0] == pytest.approx(1, rel=1e-12)


def test_inception_score_matches_torch_fidelity():
    logits = torch.randn(500, 7, generator=torch.Generator().manual_seed(0)) * 3
    ref = isc_features_to_metric(logits, splits=5, shuffle=False)
    mean, std = inception_score(logits, splits=5)
    assert mean == pytest.approx(ref["inception_score_mean"], rel=1e-10)
    assert std == pytest.approx(ref["inception_score_std"], rel=1e-8)
    assert inception_score(logits.softmax(1), splits=5)[0] == pytest.approx(mean, rel=1e-6)


def test_within_class_diversity_matches_naive_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(41, 3, 4, 4, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (41,), generator=g)
    labels[0] = 9  # a singleton class: no pairs, skipped
    per_class = []
    for c in labels.unique().tolist():
        xc = x[labels == c].flatten(1)
        pairs = [(xc[i] - xc[j]).norm() for i in range(len(xc)) for j in range(len(xc)) if i != j]
        if pairs:
            per_class.append(sum(pairs) / len(pairs))
    ref = float(sum(per_class) / len(per_class))
    assert within_class_diversity(x, labels) == pytest.approx(ref, rel=1e-12)
    assert within_class_diversity(x, labels, chunk_size=3) == pytest.approx(ref, rel=1e-12)


def test_within_class_diversity_of_collapsed_samples_is_zero():
    x = torch.randn(10, 784).repeat(20, 1)  # 20 copies of each of 10 "class means"
    labels = torch.arange(10).repeat(20)
    assert within_class_diversity(x, labels) < 1e-6
    spread = torch.randn(200, 784)
    assert within_class_diversity(spread, labels) == pytest.approx(math.sqrt(2 * 784), rel=0.05)
