"""Feature sets (paper A.5) and the feature-space objective: keys, shapes, patch statistics, the loss as a
sum of per-key drift losses (built here by explicit loops over classes and locations), gradients."""

import pytest
import torch
import torch.nn.functional as F

from raydrift.config import DriftConfig
from raydrift.method import native
from raydrift.method.drift import drift_loss
from raydrift.method.features import FeatureObjective, as_groups, feature_sets, map_statistics
from raydrift.method.objective import PixelObjective, build_objective
from raydrift.nets.encoders import build_encoder

TAUS = (0.02, 0.05, 0.2)


def test_map_statistics_keys_and_shapes():
    f = torch.randn(3, 5, 7, 9)
    out = map_statistics(f)
    assert list(out) == ["loc", "mean", "std", "mean2", "std2", "mean4", "std4"]
    assert out["loc"].shape == (3, 63, 5)
    assert out["mean"].shape == out["std"].shape == (3, 1, 5)
    assert out["mean2"].shape == out["std2"].shape == (3, 3 * 4, 5)  # odd sizes drop the last row/column
    assert out["mean4"].shape == out["std4"].shape == (3, 1 * 2, 5)
    small = map_statistics(torch.randn(2, 4, 2, 2))
    assert "mean2" in small and "mean4" not in small  # no 4x4 patches in a 2x2 map
    assert list(map_statistics(f, ("global",))) == ["mean", "std"]


def test_map_statistics_agree_with_pooling_and_unfold():
    f = torch.randn(2, 3, 8, 6, dtype=torch.float64)
    out = map_statistics(f)
    torch.testing.assert_close(out["loc"][:, 5], f.flatten(2)[:, :, 5].float())
    torch.testing.assert_close(out["mean"][:, 0], f.mean((2, 3)).float())
    torch.testing.assert_close(out["std"][:, 0], (f.flatten(2).var(2, unbiased=False) + 1e-6).sqrt().float())
    for p in (2, 4):
        mean = F.avg_pool2d(f, p).flatten(2).transpose(1, 2)  # [B, L, c], row-major patches
        cols = F.unfold(f[:, :, : f.shape[2] // p * p, : f.shape[3] // p * p], p, stride=p)
        std = (cols.view(2, 3, p * p, -1).var(2, unbiased=False) + 1e-6).sqrt().transpose(1, 2)
        torch.testing.assert_close(out[f"mean{p}"], mean.float())
        torch.testing.assert_close(out[f"std{p}"], std.float())


def test_feature_sets_pixel_and_rms_keys():
    x = torch.randn(4, 3, 6, 5)
    out = feature_sets(x, {"a": torch.randn(4, 2, 4, 4)})
    assert list(out)[:3] == ["pixel", "rms", "a/loc"]
    assert out["pixel"].shape == (4, 1, 90)
    torch.testing.assert_close(out["pixel"][:, 0], x.flatten(1))
    torch.testing.assert_close(out["rms"][:, 0], (x.square().mean((2, 3)) + 1e-6).sqrt())
    assert list(feature_sets(x, {}, pixel=False, rms=False)) == []


def test_as_groups_orders_groups_class_major():
    G, n, L, D = 3, 4, 5, 2
    v = torch.randn(G * n, L, D)
    out = as_groups(v, G)
    assert out.shape == (G * L, n, D)
    for g in range(G):
        for loc in range(L):
            torch.testing.assert_close(out[g * L + loc], v[g * n : (g + 1) * n, loc])


def test_std_gradient_is_finite_on_constant_maps():
    f = torch.zeros(2, 3, 4, 4, requires_grad=True)
    sum(v.sum() for v in map_statistics(f).values()).backward()
    assert torch.isfinite(f.grad).all()


def _objective(**kw):
    cfg = DriftConfig(space="feature", compile=False, **kw)
    torch.manual_seed(0)
    return FeatureObjective(cfg, build_encoder("mae", random_init=True, in_channels=1))


def _stack(t, G, n, L):
    """``[G * n, L, D]`` -> ``[G * L, n, D]`` by explicit loops over classes and locations."""
    return torch.stack([t[c * n : (c + 1) * n, loc] for c in range(G) for loc in range(L)])


@pytest.mark.parametrize("with_neg", [False, True])
def test_loss_is_the_sum_of_per_key_drift_losses(with_neg):
    obj = _objective()
    G, Cg, Cp, Cn = 3, 5, 6, 4
    g = torch.Generator().manual_seed(1)
    x, pos = torch.randn(G, Cg, 1, 8, 8, generator=g), torch.randn(G, Cp, 1, 8, 8, generator=g)
    neg = torch.randn(G, Cn, 1, 8, 8, generator=g) if with_neg else None
    w_neg = torch.rand(G, Cn, generator=g) * 3 if with_neg else None
    loss, info = obj(x, pos, neg, w_neg, TAUS)

    # Reference: each key's groups stacked by explicit loops over classes and locations.
    expected, keys = 0.0, []
    f_gen = obj.feature_sets(x.flatten(0, 1))
    f_pos = obj.feature_sets(pos.flatten(0, 1))
    f_neg = obj.feature_sets(neg.flatten(0, 1)) if with_neg else None
    for key, v in f_gen.items():
        L = v.shape[1]
        ref, _ = drift_loss(
            _stack(v, G, Cg, L),
            _stack(f_pos[key], G, Cp, L),
            _stack(f_neg[key], G, Cn, L) if with_neg else None,
            weight_neg=w_neg.repeat_interleave(L, 0) if with_neg else None,
            temperatures=TAUS,
            affinity_floor=0.0,
        )
        expected = expected + ref.mean()
        keys.append(key)
    torch.testing.assert_close(loss, expected)
    assert list(info["per_key"]) == keys
    torch.testing.assert_close(sum(info["per_key"].values()), loss)
    assert info["force_ms"].shape == (3,) and info["scale"].shape == ()
    assert {"pixel", "rms", "stages.0/loc", "stages.0/std2", "stages.3/mean"} <= set(keys)


@pytest.mark.parametrize("with_neg", [False, True])
def test_cpu_kernels_give_the_eager_loss_and_gradient(with_neg):
    """drift.compile on a CPU: every key's field in raydrift's kernels (any shape, no recompiles), one backward
    through all of them and the encoder into the generator's output."""
    assert native.library() is not None
    G, Cg, Cp, Cn = 3, 5, 6, 4
    g = torch.Generator().manual_seed(7)
    x, pos = torch.randn(G, Cg, 1, 8, 8, generator=g), torch.randn(G, Cp, 1, 8, 8, generator=g)
    neg = torch.randn(G, Cn, 1, 8, 8, generator=g) if with_neg else None
    w_neg = torch.rand(G, Cn, generator=g) * 3 if with_neg else None
    results = []
    for compile in (True, False):
        torch.manual_seed(0)
        obj = FeatureObjective(
            DriftConfig(space="feature", compile=compile), build_encoder("mae", random_init=True, in_channels=1)
        )
        xg = x.clone().requires_grad_(True)
        loss, info = obj(xg, pos, neg, w_neg, TAUS)
        loss.backward()
        results.append((loss, torch.stack(list(info["per_key"].values())), xg.grad))
    for kernels, eager in zip(*results):
        assert (kernels - eager).abs().max() <= 1e-4 * eager.abs().max()


def test_normalisation_scope_is_the_whole_key_not_each_class():
    """One scale per key across classes: a class scaled up changes the other classes' loss."""
    obj = _objective(feature_stats=(), feature_rms_key=False)  # the pixel key alone
    g = torch.Generator().manual_seed(2)
    x, pos = torch.randn(2, 4, 1, 4, 4, generator=g), torch.randn(2, 4, 1, 4, 4, generator=g)
    per_class = [obj(x[c : c + 1], pos[c : c + 1], None, None, TAUS)[0] for c in range(2)]
    both, _ = obj(x, pos, None, None, TAUS)
    assert not torch.allclose(both, (per_class[0] + per_class[1]) / 2)


def test_gradient_reaches_the_generator_through_the_frozen_encoder():
    obj = _objective()
    G, Cg = 2, 4
    gen = torch.nn.Linear(8, 64)
    x = gen(torch.randn(G * Cg, 8)).view(G, Cg, 1, 8, 8)
    loss, _ = obj(x, torch.randn(G, 5, 1, 8, 8), None, None, TAUS)
    loss.backward()
    assert gen.weight.grad is not None and gen.weight.grad.abs().sum() > 0
    assert torch.isfinite(gen.weight.grad).all()
    assert all(p.grad is None and not p.requires_grad for p in obj.encoder.parameters())

    # Without the pixel and rms keys, the gradient can only have come through the encoder.
    obj = _objective(feature_pixel_key=False, feature_rms_key=False)
    gen.zero_grad()
    x = gen(torch.randn(G * Cg, 8)).view(G, Cg, 1, 8, 8)
    obj(x, torch.randn(G, 5, 1, 8, 8), None, None, TAUS)[0].backward()
    assert gen.weight.grad.abs().sum() > 0


def test_feature_sets_do_not_depend_on_the_batch():
    obj = _objective()
    x = torch.randn(6, 1, 8, 8)
    full = obj.feature_sets(x)
    part = obj.feature_sets(x[:2])
    for key in full:
        torch.testing.assert_close(full[key][:2], part[key], rtol=1e-5, atol=1e-5)


def test_build_objective_by_space(tmp_path):
    from raydrift.nets.mae import MAEArch, MAEEncoderNet, save_mae

    assert isinstance(build_objective(DriftConfig()), PixelObjective)
    path = save_mae(tmp_path / "mae.pt", MAEEncoderNet(MAEArch(in_channels=1)), {"dataset": "digits"})
    cfg = DriftConfig(space="feature", encoder="mae", encoder_weights=str(path), encoder_layers=("stages.1",))
    obj = build_objective(cfg, (1, 8, 8), "cpu", "digits")
    assert isinstance(obj, FeatureObjective)
    keys = set(obj.feature_sets(torch.randn(2, 1, 8, 8)))
    assert keys == {"pixel", "rms"} | {f"stages.1/{s}" for s in ("loc", "mean", "std", "mean2", "std2")}
    with pytest.raises(ValueError, match="image data"):
        build_objective(cfg, (2,))
