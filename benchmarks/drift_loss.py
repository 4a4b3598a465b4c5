"""Speed and peak memory of the drift loss (forward + backward, float32) against baselines in the same run.

Baselines, each timed in this process right beside ours:
  * ``eager``: a straightforward eager PyTorch transcription of the same math (kept below);
  * ``jax``: the same transcription under ``jax.jit`` (XLA, like the authors' code), if jax is installed
    (``pip install jax``; not a project dependency).
Ours: ``raydrift.method.drift.drift_loss`` eager and with ``compile=True`` (what training uses).

Peak memory is measured per implementation in a fresh subprocess: the extra resident memory of one
forward+backward over the inputs (VmHWM after resetting it, minus VmRSS before; large blocks are
mmapped so freed memory leaves RSS).

    python benchmarks/drift_loss.py [--threads 2] [--repeats 7] [--no-memory]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import statistics
import subprocess
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from raydrift.method.drift import drift_loss  # noqa: E402

SHAPES = [(10, 64, 64, 0, 1024), (2560, 32, 32, 0, 64), (40, 128, 128, 32, 512), (1, 1024, 1024, 0, 2)]
TAUS = (0.02, 0.05, 0.2)
# The authors' XLA-compiled code on this machine type (2 threads, float32, fwd+bwd), from the issue.
AUTHORS_MS = {SHAPES[0]: 31.0, SHAPES[1]: 377.0, SHAPES[2]: 264.0, SHAPES[3]: 92.0}


def eager_transcription(gen, pos, neg, w_neg, taus):
    """The math written the obvious way: cdist, softmaxes, clamp, einsum; autograd for the backward."""
    B, Cg, S = gen.shape
    Cp, Cn = pos.shape[1], neg.shape[1]
    old = gen.detach()
    targets = torch.cat([old, neg, pos], 1)
    w = torch.cat([torch.ones(B, Cg), w_neg, torch.ones(B, Cp)], 1)
    dist = torch.cdist(old, targets)
    scale = (dist * w[:, None, :]).mean() / w.mean()
    s = (scale / math.sqrt(S)).clamp(min=1e-3)
    old_s, targets_s = old / s, targets / s
    dist_n = dist / scale.clamp(min=1e-3)
    mask = torch.zeros(Cg, Cg + Cn + Cp)
    mask[:, :Cg] = torch.eye(Cg)
    dist_n = dist_n + mask * 100
    force = torch.zeros_like(old_s)
    for tau in taus:
        logits = -dist_n / tau
        a = torch.sqrt((logits.softmax(-1) * logits.softmax(-2)).clamp(min=1e-6)) * w[:, None, :]
        a_neg, a_pos = a[:, :, : Cg + Cn], a[:, :, Cg + Cn :]
        coef = torch.cat([-a_neg * a_pos.sum(-1, keepdim=True), a_pos * a_neg.sum(-1, keepdim=True)], 2)
        f = torch.einsum("biy,byx->bix", coef, targets_s) - coef.sum(-1)[..., None] * old_s
        force = force + f / (f**2).mean().clamp(min=1e-8).sqrt()
    goal = (old_s + force).detach()
    return ((gen / s - goal) ** 2).mean((-1, -2))


def jax_step():
    """``jax.jit`` of the same transcription (value and gradient), or None without jax."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None

    def loss_fn(gen, pos, neg, w_neg):
        B, Cg, S = gen.shape
        Cp, Cn = pos.shape[1], neg.shape[1]
        old = jax.lax.stop_gradient(gen)
        targets = jnp.concatenate([old, neg, pos], 1)
        w = jnp.concatenate([jnp.ones((B, Cg)), w_neg, jnp.ones((B, Cp))], 1)
        d2 = (old**2).sum(-1)[:, :, None] + (targets**2).sum(-1)[:, None, :]
        d2 = d2 - 2 * jnp.einsum("bis,bjs->bij", old, targets)
        dist = jnp.sqrt(jnp.maximum(d2, 1e-8))
        scale = (dist * w[:, None, :]).mean() / w.mean()
        s = jnp.maximum(scale / math.sqrt(S), 1e-3)
        old_s, targets_s = old / s, targets / s
        mask = jnp.pad(jnp.eye(Cg), ((0, 0), (0, Cn + Cp)))
        dist_n = dist / jnp.maximum(scale, 1e-3) + mask * 100
        force = jnp.zeros_like(old_s)
        for tau in TAUS:
            logits = -dist_n / tau
            a = jnp.sqrt(jnp.maximum(jax.nn.softmax(logits, -1) * jax.nn.softmax(logits, -2), 1e-6))
            a = a * w[:, None, :]
            a_neg, a_pos = a[:, :, : Cg + Cn], a[:, :, Cg + Cn :]
            coef = jnp.concatenate([-a_neg * a_pos.sum(-1, keepdims=True), a_pos * a_neg.sum(-1, keepdims=True)], 2)
            f = jnp.einsum("biy,byx->bix", coef, targets_s) - coef.sum(-1)[..., None] * old_s
            force = force + f / jnp.sqrt(jnp.maximum((f**2).mean(), 1e-8))
        goal = jax.lax.stop_gradient(old_s + force)
        return ((gen / s - goal) ** 2).mean((-1, -2)).sum()

    grad = jax.jit(jax.value_and_grad(loss_fn))

    def step(gen, pos, neg, w_neg):
        args = [jnp.asarray(t.detach().numpy()) for t in (gen, pos, neg, w_neg)]
        return lambda: jax.block_until_ready(grad(*args))

    return step


def make_inputs(shape, seed=0):
    G, Cg, Cp, Cn, S = shape
    g = torch.Generator().manual_seed(seed)
    gen = torch.randn(G, Cg, S, generator=g).requires_grad_(True)
    pos = torch.randn(G, Cp, S, generator=g) + 0.5
    neg = torch.randn(G, Cn, S, generator=g)
    w_neg = torch.rand(G, Cn, generator=g) * 2
    return gen, pos, neg, w_neg


def torch_step(impl, gen, pos, neg, w_neg):
    def run():
        gen.grad = None
        if impl == "eager":
            loss = eager_transcription(gen, pos, neg, w_neg, TAUS)
        else:
            loss, _ = drift_loss(
                gen,
                pos,
                neg,
                weight_neg=w_neg if neg.shape[1] else None,
                temperatures=TAUS,
                compile=impl == "compiled",
            )
        loss.sum().backward()

    return run


def time_ms(fn, repeats):
    for _ in range(2):  # warm-up (and compilation)
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(field)


def measure_memory(impl, shape):
    """Run in a fresh process: extra peak RSS (MiB) of one forward+backward after warm-up."""
    inputs = make_inputs(shape)
    fn = jax_step()(*inputs) if impl == "jax" else torch_step(impl, *inputs)
    fn()
    fn()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = _rss_kib("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    fn()
    return (_rss_kib("VmHWM:") - before) / 1024


def memory_in_subprocess(impl, shape, threads):
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS=str(threads))
    code = (
        "import sys, json, warnings; warnings.simplefilter('ignore'); sys.argv=['x'];"
        f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r});"
        "import torch; torch.set_num_threads(%d);"
        % threads
        + f"import drift_loss as b; print(json.dumps(b.measure_memory({impl!r}, {tuple(shape)!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    jax_make = jax_step()
    impls = ["eager", "ours-eager", "compiled"] + (["jax"] if jax_make else [])
    print(f"drift loss fwd+bwd, float32, {args.threads} threads, median of {args.repeats}; T={len(TAUS)}")
    header = "shape (G,Cg,Cp,Cn,S)".ljust(26) + "".join(f"{i:>12}" for i in impls)
    header += "  speedup vs eager" + ("  ours/jax" if jax_make else "") + "  ours/authors*"
    print(header + ("  peak MiB (" + ", ".join(impls) + ")" if not args.no_memory else ""))
    for shape in SHAPES:
        inputs = make_inputs(shape)
        ms = {}
        for impl in impls:
            fn = jax_make(*inputs) if impl == "jax" else torch_step(impl, *inputs)
            ms[impl] = time_ms(fn, args.repeats)
        row = str(shape).ljust(26) + "".join(f"{ms[i]:>10.1f}ms" for i in impls)
        row += f"  {ms['eager'] / ms['compiled']:>15.2f}x"
        if jax_make:
            row += f"  {ms['compiled'] / ms['jax']:>8.2f}"
        row += f"  {ms['compiled'] / AUTHORS_MS[shape]:>12.2f}"
        if not args.no_memory:
            peaks = [memory_in_subprocess(i, shape, args.threads) for i in impls]
            G, Cg, _, _, S = shape
            row += "  " + ", ".join(f"{p:.0f}" for p in peaks)
            row += f"  ([G,Cg,T,S] would be {G * Cg * len(TAUS) * S * 4 / 2**20:.0f} MiB)"
        print(row, flush=True)
    print("* authors' XLA times from the issue (31, 377, 264, 92 ms), measured elsewhere on this machine type;")
    print("  the same-run ratios are the speedup columns. Target: ours/authors <= 0.7 on every shape.")


if __name__ == "__main__":
    main()
