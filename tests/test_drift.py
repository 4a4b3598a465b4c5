"""Properties of the drift loss: a naive per-sample loop, stop-gradient, bf16, variants, memory."""

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from raydrift.method.drift import _serial, anneal_temperatures, drift_loss
from raydrift.method.field_common import gram_is_cheaper


def naive_field(gen, pos, neg, w_neg, temperatures, kernel, normalization, floor):
    """The drift field written one sample and one target at a time, in float64. Returns (V, s)."""
    gen, pos, neg, w_neg = (t.double() for t in (gen, pos, neg, w_neg))
    G, Cg, S = gen.shape
    targets = [torch.cat([gen[g], neg[g], pos[g]]) for g in range(G)]
    weights = [
        torch.cat([torch.ones(Cg, dtype=torch.float64), w_neg[g], torch.ones(pos.shape[1], dtype=torch.float64)])
        for g in range(G)
    ]
    k = Cg + neg.shape[1]
    N = len(targets[0])
    dist = torch.zeros(G, Cg, N, dtype=torch.float64)
    for g in range(G):
        for i in range(Cg):
            for j in range(N):
                d2 = 0.0 if j == i else float(((gen[g, i] - targets[g][j]) ** 2).sum())
                dist[g, i, j] = math.sqrt(max(d2, 1e-8))
    num = sum(float(weights[g][j] * dist[g, i, j]) for g in range(G) for i in range(Cg) for j in range(N))
    scale = num / (Cg * float(sum(w.sum() for w in weights)))
    s = scale / math.sqrt(S)
    V = torch.zeros(G, Cg, S, dtype=torch.float64)
    for tau in temperatures:
        forces = torch.zeros(G, Cg, S, dtype=torch.float64)
        for g in range(G):
            e = dist[g] / scale
            for i in range(Cg):
                e[i, i] += 100.0
            if kernel == "gaussian":
                e = e**2 / 2
            logit = -e / tau
            for i in range(Cg):
                a = torch.zeros(N, dtype=torch.float64)
                for j in range(N):
                    if normalization == "xy":
                        row = math.exp(logit[i, j]) / float(torch.exp(logit[i]).sum())
                        col = math.exp(logit[i, j]) / float(torch.exp(logit[:, j]).sum())
                        a[j] = math.sqrt(row * col)
                    elif normalization == "y":
                        part = slice(0, k) if j < k else slice(k, N)
                        a[j] = math.exp(logit[i, j]) / float(torch.exp(logit[i, part]).sum())
                    else:
                        a[j] = math.exp(logit[i, j])
                    a[j] = max(a[j], floor) * weights[g][j]
                sum_neg, sum_pos = float(a[:k].sum()), float(a[k:].sum())
                for j in range(N):
                    coef = a[j] * sum_neg if j >= k else -a[j] * sum_pos
                    forces[g, i] += coef * (targets[g][j] - gen[g, i]) / s
        V += forces / math.sqrt(float((forces**2).mean()))
    return V, s


def _inputs(G=2, Cg=5, Cp=4, Cn=3, S=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    gen = torch.randn(G, Cg, S, generator=g)
    pos = torch.randn(G, Cp, S, generator=g) * 0.7 + 0.5
    neg = torch.randn(G, Cn, S, generator=g)
    w_neg = torch.rand(G, Cn, generator=g) * 3
    return gen, pos, neg, w_neg


VARIANTS = [
    ("laplace", "xy", 1e-3, (0.02, 0.05, 0.2)),
    ("laplace", "xy", 0.0, (0.02, 0.05, 0.2)),
    ("gaussian", "xy", 0.0, (0.1, 0.5)),
    ("laplace", "y", 0.0, (0.05,)),
    ("gaussian", "y", 1e-3, (0.3, 1.0)),
    ("laplace", "none", 0.0, (0.2, 0.7)),
    ("gaussian", "none", 0.0, (0.5,)),
]


@pytest.mark.parametrize("kernel,normalization,floor,temperatures", VARIANTS)
def test_agrees_with_naive_loop(kernel, normalization, floor, temperatures, drift_compile):
    gen, pos, neg, w_neg = _inputs()
    x = gen.clone().requires_grad_(True)
    loss, _ = drift_loss(
        x,
        pos,
        neg,
        weight_neg=w_neg,
        temperatures=temperatures,
        kernel=kernel,
        normalization=normalization,
        affinity_floor=floor,
        compile=drift_compile,
    )
    loss.sum().backward()
    V, s = naive_field(gen, pos, neg, w_neg, temperatures, kernel, normalization, floor)
    _, Cg, S = gen.shape
    expected_grad = -2 * V / (s * Cg * S)
    assert torch.allclose(loss.double(), (V**2).mean((1, 2)), rtol=1e-4)
    assert torch.allclose(x.grad.double(), expected_grad, rtol=1e-4, atol=1e-5 * expected_grad.abs().max())


GRAM_VARIANTS = [v for v in VARIANTS if len(v[3]) == 3] + [("gaussian", "y", 0.0, (0.1, 0.3, 1.0))]


@pytest.mark.parametrize("kernel,normalization,floor,temperatures", GRAM_VARIANTS)
def test_gram_path_agrees_with_naive_loop(kernel, normalization, floor, temperatures, drift_compile):
    """Few samples in many dimensions: the forces' mean squares come from the Gram matrix y y^T."""
    gen, pos, neg, w_neg = _inputs(S=160, seed=6)
    G, Cg, S = gen.shape
    assert gram_is_cheaper(Cg, Cg + pos.shape[1] + neg.shape[1], S, len(temperatures))
    x = gen.clone().requires_grad_(True)
    loss, info = drift_loss(
        x,
        pos,
        neg,
        weight_neg=w_neg,
        temperatures=temperatures,
        kernel=kernel,
        normalization=normalization,
        affinity_floor=floor,
        compile=drift_compile,
    )
    loss.sum().backward()
    V, s = naive_field(gen, pos, neg, w_neg, temperatures, kernel, normalization, floor)
    expected_grad = -2 * V / (s * Cg * S)
    assert torch.allclose(loss.double(), (V**2).mean((1, 2)), rtol=1e-4)
    assert torch.allclose(x.grad.double(), expected_grad, rtol=1e-4, atol=1e-5 * expected_grad.abs().max())
    assert info["force_ms"].shape == (len(temperatures),) and bool((info["force_ms"] > 0).all())


def test_gram_and_direct_paths_are_chosen_by_cost():
    assert gram_is_cheaper(64, 128, 1024, 3)  # MNIST pixels: few samples, many dimensions
    assert not gram_is_cheaper(32, 64, 64, 3)  # per-location feature keys
    assert not gram_is_cheaper(1024, 2048, 2, 3)  # toy 2-D
    assert not gram_is_cheaper(64, 128, 1024, 1)  # one temperature: the distances' matmul is all it needs


def test_large_call_compiles_parallel_loops_and_matches_eager(monkeypatch):
    """Calls over ~1M affinity entries compile multi-threaded elementwise loops; smaller ones single-threaded."""
    monkeypatch.setenv("RAYDRIFT_NATIVE", "0")  # torch.compile's path (GPUs; CPUs without raydrift's kernels)
    gen, pos, neg, w_neg = _inputs(G=1, Cg=600, Cp=600, Cn=8, S=2, seed=7)
    assert not _serial(gen.shape, 600, 8, 3) and _serial(torch.Size([2, 5, 3]), 4, 3, 3)
    results = []
    for compile in (False, True):
        x = gen.clone().requires_grad_(True)
        loss, info = drift_loss(x, pos, neg, weight_neg=w_neg, compile=compile)
        loss.sum().backward()
        results.append((loss, info["force_ms"], x.grad))
    for eager, compiled in zip(*results):
        assert (eager - compiled).abs().max() <= 1e-4 * eager.abs().max()  # the golden tests' criterion


def test_no_gradient_into_targets_and_closed_form_matches_autograd():
    gen, pos, neg, w_neg = _inputs(G=3, Cg=6, Cp=7, Cn=2, S=4, seed=1)
    x = gen.clone().requires_grad_(True)
    y_pos, y_neg = pos.clone().requires_grad_(True), neg.clone().requires_grad_(True)
    loss, info = drift_loss(x, y_pos, y_neg, weight_neg=w_neg)
    loss.sum().backward()
    assert y_pos.grad is None and y_neg.grad is None
    # Autograd of the regression with an explicitly detached goal gives the same gradient.
    V, s = naive_field(gen, pos, neg, w_neg, (0.02, 0.05, 0.2), "laplace", "xy", 1e-3)
    x2 = gen.double().clone().requires_grad_(True)
    goal = (x2 / s + V).detach()
    ((x2 / s - goal) ** 2).mean((1, 2)).sum().backward()
    assert torch.allclose(x.grad.double(), x2.grad, rtol=1e-4, atol=1e-6)
    assert info["force_ms"].shape == (3,) and bool((info["force_ms"] > 0).all())


def test_bf16_inputs_computed_in_float32():
    g = torch.Generator().manual_seed(2)
    gen = (torch.randn(4, 16, 32, generator=g)).bfloat16()
    pos = (torch.randn(4, 16, 32, generator=g) + 0.3).bfloat16()
    x = gen.clone().requires_grad_(True)
    loss, info = drift_loss(x, pos, temperatures=(0.02, 0.05, 0.2))
    loss.sum().backward()
    assert loss.dtype == torch.float32 and x.grad.dtype == torch.bfloat16
    x32 = gen.float().clone().requires_grad_(True)
    loss32, info32 = drift_loss(x32, pos.float(), temperatures=(0.02, 0.05, 0.2))
    loss32.sum().backward()
    assert torch.equal(loss, loss32)  # identical: the bf16 values are upcast before any arithmetic
    assert torch.equal(x.grad, x32.grad.bfloat16())
    assert torch.isfinite(info["force_ms"]).all() and (info["force_ms"] > 0).all()  # no bf16 underflow at tau=0.02


def test_invariances():
    gen, pos, neg, w_neg = _inputs(G=2, Cg=8, Cp=8, Cn=0, S=5, seed=3)
    base, _ = drift_loss(gen, pos, temperatures=(0.05, 0.2))
    shifted, _ = drift_loss(gen + 7.0, pos + 7.0, temperatures=(0.05, 0.2))  # translation
    scaled, _ = drift_loss(gen * 3.0, pos * 3.0, temperatures=(0.05, 0.2))  # distances are normalised
    perm = torch.randperm(8)
    permuted, _ = drift_loss(gen[:, perm], pos[:, torch.randperm(8)], temperatures=(0.05, 0.2))
    for other in (shifted, scaled, permuted):
        assert torch.allclose(base, other, rtol=1e-4)


def test_field_attracts_samples_toward_distant_positives():
    g = torch.Generator().manual_seed(4)
    gen = torch.randn(2, 32, 2, generator=g)
    pos = torch.randn(2, 32, 2, generator=g) + torch.tensor([6.0, -3.0])
    x = gen.clone().requires_grad_(True)
    drift_loss(x, pos, temperatures=(0.02, 0.05, 0.2), affinity_floor=0.0)[0].sum().backward()
    step = -x.grad  # gradient descent moves every sample along V
    toward = pos.mean(1, keepdim=True) - gen
    assert bool(((step * toward).sum(-1) > 0).all())


def test_annealing_schedule():
    assert anneal_temperatures((0.02, 0.2), 0, rate=0.1) == (0.02, 0.2)
    t = anneal_temperatures((0.02, 0.2), 10, rate=0.1, floor=0.01)
    assert t[0] == 0.01 and math.isclose(t[1], 0.2 * math.exp(-1.0))
    with pytest.raises(ValueError, match="rate"):
        anneal_temperatures((0.1,), 1, rate=-1)


def test_annealed_temperatures_do_not_recompile(monkeypatch):
    import torch._dynamo

    monkeypatch.setenv("RAYDRIFT_NATIVE", "0")
    gen, pos, _, _ = _inputs(G=2, Cg=6, Cp=6, Cn=0, S=3, seed=5)
    torch._dynamo.reset()
    counts = []
    for step in range(4):
        taus = anneal_temperatures((0.05, 0.2), step, rate=0.3, floor=0.01)
        drift_loss(gen, pos, temperatures=taus, compile=True)
        counts.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])
    assert counts[-1] == counts[0]


class _LargestAllocation(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_never_holds_a_per_temperature_sample_tensor():
    G, Cg, Cp, S, T = 2, 16, 16, 256, 3
    gen = torch.randn(G, Cg, S, requires_grad=True)
    pos = torch.randn(G, Cp, S)
    with _LargestAllocation() as mode:
        loss, _ = drift_loss(gen, pos, temperatures=(0.02, 0.05, 0.2))
        loss.sum().backward()
    assert mode.largest <= G * (Cg + Cp) * S  # the concatenated targets; [G, Cg, T, S] would be larger
    assert mode.largest < G * Cg * T * S


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(temperatures=()), "temperatures"),
        (dict(temperatures=(0.1, -1.0)), "temperatures"),
        (dict(kernel="cauchy"), "kernel"),
        (dict(normalization="x"), "normalization"),
        (dict(affinity_floor=-1.0), "affinity_floor"),
    ],
)
def test_bad_options_are_clear_errors(kwargs, match):
    gen, pos, _, _ = _inputs()
    with pytest.raises(ValueError, match=match):
        drift_loss(gen, pos, **kwargs)


def test_bad_shapes_are_clear_errors():
    gen, pos, neg, w_neg = _inputs()
    with pytest.raises(ValueError, match="pos"):
        drift_loss(gen, pos[:, :, :2])
    with pytest.raises(ValueError, match="weight_neg"):
        drift_loss(gen, pos, neg, weight_neg=w_neg[:, :1])
    with pytest.raises(ValueError, match="at least 2"):
        drift_loss(gen[:, :1], pos)
