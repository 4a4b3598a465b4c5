"""The LeNet feature net on sklearn's 8x8 digits, its cache, and the FID yardstick built on it."""

import os

import pytest
import torch
from sklearn.datasets import load_digits

from raydrift.evaluation.feature_nets import LeNet, load_or_train_classifier, train_classifier
from raydrift.evaluation.metrics import PROVENANCE_KEYS, FeatureStats, stats_to_fid, within_class_diversity
from raydrift.evaluation.refstats import reference_stats

EPOCHS, BATCH = 30, 32  # ~900 training images: ~850 steps, a second or two on 2 cores


@pytest.fixture(scope="module")
def digits():
    """Digits as [-1, 1] images [N, 1, 8, 8], split into fixed random halves: (x_tr, y_tr, x_te, y_te)."""
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 8 - 1  # pixel values 0..16
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    tr, te = perm[: len(x) // 2], perm[len(x) // 2 :]
    return x[tr], y[tr], x[te], y[te]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def net(digits, cache_dir):
    x_tr, y_tr, x_te, y_te = digits
    return load_or_train_classifier(
        "digits", x_tr, y_tr, 10, cache_dir, epochs=EPOCHS, seed=0, batch_size=BATCH, x_test=x_te, y_test=y_te
    )


def test_accuracy_and_interface(net, digits):
    x_te = digits[2]
    assert net.accuracy > 0.9
    assert net.id.startswith(f"lenet:digits:e{EPOCHS}:") and len(net.id.rsplit(":", 1)[1]) == 8
    assert net.dim == 64 and net.has_logits and not net.from_cache
    f, z = net.features_and_logits(x_te)
    assert f.shape == (len(x_te), 64) and z.shape == (len(x_te), 10)
    torch.testing.assert_close(net.features(x_te, batch_size=7), f, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(net.logits(x_te, batch_size=1000), z, rtol=1e-5, atol=1e-5)


def test_cache_is_reused(net, digits, cache_dir):
    x_tr, y_tr, x_te, y_te = digits
    (path,) = cache_dir.glob("classifier-digits-*.pt")
    mtime = os.stat(path).st_mtime_ns
    again = load_or_train_classifier(
        "digits", x_tr, y_tr, 10, cache_dir, epochs=EPOCHS, seed=0, batch_size=BATCH, x_test=x_te, y_test=y_te
    )
    assert again.from_cache and again.id == net.id and again.accuracy == net.accuracy
    assert os.stat(path).st_mtime_ns == mtime
    torch.testing.assert_close(again.features(x_te), net.features(x_te))
    other = load_or_train_classifier("digits", x_tr[:100], y_tr[:100], 10, cache_dir, epochs=1, seed=0)
    assert other.id != net.id and not other.from_cache  # different data or schedule: a different net


def test_training_is_deterministic(digits):
    x, y = digits[0][:200], digits[1][:200]
    state = torch.get_rng_state()
    a = train_classifier(x, y, 10, epochs=2, seed=3, batch_size=32)
    b = train_classifier(x, y, 10, epochs=2, seed=3, batch_size=32)
    c = train_classifier(x, y, 10, epochs=2, seed=4, batch_size=32)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a.fc.weight, c.fc.weight)


def test_lenet_shapes():
    for c, hw in ((1, 28), (3, 32)):
        m = LeNet(c, (hw, hw), 10)
        assert m(torch.zeros(2, c, hw, hw)).shape == (2, 10)
        assert m.features(torch.zeros(2, c, hw, hw)).shape == (2, 128)


def test_reference_stats_cache_and_provenance(net, digits, cache_dir):
    x_te = digits[2]
    stats, prov = reference_stats(net, "digits", "test", x_te, cache_dir=cache_dir)
    assert tuple(prov) == PROVENANCE_KEYS
    assert prov == {"feature_net": net.id, "num_samples": len(x_te), "reference": "digits:test"}
    ref = FeatureStats().update(net.features(x_te))
    torch.testing.assert_close(stats.cov(), ref.cov(), rtol=1e-10, atol=1e-10)

    def not_loaded():
        raise AssertionError("a cache hit must not load the images")

    cached, prov_cached = reference_stats(net, "digits", "test", not_loaded, cache_dir=cache_dir)
    assert prov_cached == prov and torch.equal(cached.cov(), stats.cov())
    sub, prov_sub = reference_stats(net, "digits", "test", x_te, num_samples=100, cache_dir=cache_dir)
    assert prov_sub["num_samples"] == sub.num == 100


def test_fid_yardstick_real_halves_far_below_class_means(net, digits, cache_dir):
    """The project's sanity check: real-vs-real FID is far below the class-mean generator's FID."""
    x_tr, y_tr, x_te, y_te = digits
    ref, _ = reference_stats(net, "digits", "test", x_te, cache_dir=cache_dir)
    class_means = torch.stack([x_tr[y_tr == k].mean(0) for k in range(10)])
    fake = class_means[y_te]  # each test image replaced by its class's mean image
    fid_real = stats_to_fid(FeatureStats().update(net.features(x_tr)), ref)
    fid_means = stats_to_fid(FeatureStats().update(net.features(fake)), ref)
    assert fid_real < 0.2 * fid_means  # measured: 2.1 vs 28.5 (MNIST, 2-epoch LeNet: 1.4 vs 542)
    assert within_class_diversity(fake, y_te) < 1e-6 < 0.5 * within_class_diversity(x_te, y_te)


def _train_in_subprocess(args):
    cache_dir, threads = args
    torch.set_num_threads(threads)
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 8 - 1
    return load_or_train_classifier("digits", x, torch.tensor(d.target), 10, cache_dir, epochs=1, seed=0).id


def test_racing_processes_share_one_trained_net(tmp_path):
    """Concurrent first uses (e.g. two trials) wait for one trainer instead of each using its own weights."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(2) as pool:
        ids = pool.map(_train_in_subprocess, [(tmp_path, 1), (tmp_path, 2)])
    assert ids[0] == ids[1]
    assert len(list(tmp_path.glob("classifier-digits-*.pt"))) == 1


def test_id_names_the_weights(digits, tmp_path):
    x_tr, y_tr, _, _ = digits
    a = load_or_train_classifier("digits", x_tr, y_tr, 10, tmp_path / "a", epochs=1, seed=0)
    b = load_or_train_classifier("digits", x_tr, y_tr, 10, tmp_path / "b", epochs=1, seed=1)
    assert a.id.rsplit(":", 1)[0] == b.id.rsplit(":", 1)[0] and a.id != b.id
