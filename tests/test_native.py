"""raydrift's CPU drift kernels (raydrift/method/native): built once into the cache, the same numbers as the
torch field at every thread count and on both of their parallel layouts, a clear fallback without a compiler.
(The golden vectors and the naive loop run on them too: tests/test_drift_golden.py, tests/test_drift.py.)"""

import warnings

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from raydrift.method import native
from raydrift.method.drift import drift_loss
from raydrift.method.field_common import gram_is_cheaper
from raydrift.method.field_cpu import release_scratch


def _inputs(G, Cg, Cp, Cn, S, seed=0):
    g = torch.Generator().manual_seed(seed)
    gen = torch.randn(G, Cg, S, generator=g)
    pos = torch.randn(G, Cp, S, generator=g) * 0.8 + 0.4
    neg = torch.randn(G, Cn, S, generator=g) if Cn else None
    w_neg = torch.rand(G, Cn, generator=g) * 2 if Cn else None
    return gen, pos, neg, w_neg


def _loss_and_grad(gen, pos, neg, w_neg, compile, **kw):
    x = gen.clone().requires_grad_(True)
    loss, info = drift_loss(x, pos, neg, weight_neg=w_neg, compile=compile, **kw)
    loss.sum().backward()
    return loss, info["force_ms"], info["scale"], x.grad


def _assert_close(a, b):
    for u, v in zip(a, b):
        assert (u - v).abs().max() <= 1e-4 * v.abs().max()  # the golden tests' criterion


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize(
    "shape",
    [
        (12, 8, 9, 3, 5),  # many groups: one group per thread at a time
        (1, 40, 37, 5, 3),  # one group: its rows and columns split among the threads; N = 82, no full vector
        (2, 70, 70, 0, 300),  # the Gram path (N << S), two groups
    ],
)
@pytest.mark.parametrize("kernel,normalization,floor", [("laplace", "xy", 1e-3), ("gaussian", "y", 0.0)])
def test_kernels_match_the_torch_field(shape, threads, kernel, normalization, floor):
    assert native.library() is not None
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        kw = dict(temperatures=(0.03, 0.1, 0.4), kernel=kernel, normalization=normalization, affinity_floor=floor)
        inputs = _inputs(*shape)
        _assert_close(_loss_and_grad(*inputs, True, **kw), _loss_and_grad(*inputs, False, **kw))
    finally:
        torch.set_num_threads(before)


def test_normalisation_none_and_data_far_from_zero():
    gen, pos, neg, w_neg = _inputs(3, 16, 16, 4, 24, seed=3)
    kw = dict(temperatures=(0.2, 0.7), normalization="none", affinity_floor=0.0)
    shifted = (gen + 50.0, pos + 50.0, neg + 50.0, w_neg)  # the centring keeps the distances exact in float32
    _assert_close(_loss_and_grad(*shifted, True, **kw), _loss_and_grad(*shifted, False, **kw))


def test_calls_before_one_backward_do_not_share_memory():
    """The feature objective calls the loss once per key, then runs one backward: each call's field must
    survive the next call (the kernels' reused scratch holds only temporaries)."""
    # the direct path twice, then the Gram path (N << S), all in the same scratch
    a, b, c = _inputs(6, 8, 8, 0, 12, seed=1), _inputs(3, 10, 6, 2, 20, seed=2), _inputs(2, 10, 10, 0, 300, seed=3)
    grads = []
    for compile in (True, False):
        xa, xb, xc = (inp[0].clone().requires_grad_(True) for inp in (a, b, c))
        loss_a, _ = drift_loss(xa, a[1], compile=compile)
        loss_b, _ = drift_loss(xb, b[1], b[2], weight_neg=b[3], compile=compile)
        loss_c, _ = drift_loss(xc, c[1], compile=compile)
        (loss_a.sum() + loss_b.sum() + loss_c.sum()).backward()
        grads.append((xa.grad, xb.grad, xc.grad))
    _assert_close(grads[0], grads[1])


def test_library_is_built_once_per_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYDRIFT_CACHE", str(tmp_path))
    path = native._build()
    assert path.parent == tmp_path / "native" and path.suffix == ".so"
    stamp = path.stat().st_mtime_ns
    assert native._build() == path and path.stat().st_mtime_ns == stamp  # found, not rebuilt


def test_without_a_compiler_the_field_runs_in_torch_after_one_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYDRIFT_CACHE", str(tmp_path))
    monkeypatch.setenv("RAYDRIFT_CXX", "/bin/false")
    monkeypatch.setattr(native, "_state", {})
    with pytest.warns(UserWarning, match="could not be built.*C\\+\\+ compiler"):
        assert native.library() is None
    inputs = _inputs(4, 6, 6, 2, 5, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # warned once, not on every call
        fallback = _loss_and_grad(*inputs, True)
    _assert_close(fallback, _loss_and_grad(*inputs, False))


def test_turned_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("RAYDRIFT_NATIVE", "0")
    assert native.library() is None
    assert not native.supports(torch.zeros(1, 2, 3), "laplace", "xy")


class _Allocations(TorchDispatchMode):
    """The largest new storage (in float32 entries) any op returns: views and out= results are not new."""

    def __init__(self):
        super().__init__()
        self.largest = 0
        self.seen = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for t in [*args, *(kwargs or {}).values()]:
            for u in t if isinstance(t, (tuple, list)) else (t,):
                if isinstance(u, torch.Tensor):
                    self.seen.add(u.untyped_storage().data_ptr())
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in self.seen:
                self.seen.add(t.untyped_storage().data_ptr())
                self.largest = max(self.largest, t.untyped_storage().nbytes() // 4)
        return out


@pytest.mark.parametrize("path", ["direct", "gram"])
def test_temporaries_live_in_one_reused_buffer_and_per_temperature_forces_are_never_held(path):
    G, Cg, Cp, S, T = (64, 16, 16, 24, 3) if path == "direct" else (4, 16, 16, 400, 3)  # N = 32 >/< S
    N = Cg + Cp
    assert gram_is_cheaper(Cg, N, S, T) == (path == "gram")
    gen, pos, _, _ = _inputs(G, Cg, Cp, 0, S, seed=5)
    release_scratch()
    for call in range(2):
        x = gen.clone().requires_grad_(True)
        with _Allocations() as mode:
            loss, _ = drift_loss(x, pos, temperatures=(0.02, 0.05, 0.2), compile=True)
            loss.sum().backward()
        if call == 1:  # call 0's buffer again: nothing larger than the field (the gradient, scaled in place) is new
            assert mode.largest <= G * Cg * S
        elif path == "direct":  # one buffer: the targets, the energies, one coefficient block, one force (not T)
            assert mode.largest == G * (N * S + 2 * Cg * N + Cg * S)
        else:  # the targets (the Gram matrix and the coefficient blocks, all smaller, are freed before the field)
            assert mode.largest == G * N * S


def test_a_second_backward_through_one_loss_is_a_clear_error(drift_compile):
    gen, pos, _, _ = _inputs(8, 6, 6, 0, 4, seed=6)  # the direct path: the field becomes the gradient in place
    x = gen.clone().requires_grad_(True)
    loss, _ = drift_loss(x, pos, compile=drift_compile)
    loss.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="second backward pass"):
        loss.sum().backward()


@pytest.mark.parametrize("threads", [1, 3])
def test_small_products_match_torch(threads):
    """rd_bmm (used for small per-group products where it is built for AVX-512; tested on any build): rows
    not a multiple of 4, columns not a multiple of 64, one group or many."""
    lib = native.library()
    g = torch.Generator().manual_seed(8)
    for G, M, K, N in [(1, 1, 1, 1), (3, 7, 5, 33), (2, 33, 64, 70), (5, 4, 17, 130), (1, 12, 9, 64)]:
        a, b = torch.randn(G, M, K, generator=g), torch.randn(G, K, N, generator=g)
        out = torch.full((G, M, N), float("nan"))
        lib.rd_bmm(a.data_ptr(), b.data_ptr(), out.data_ptr(), G, M, K, N, threads)
        torch.testing.assert_close(out, torch.bmm(a, b), rtol=1e-5, atol=1e-5)
