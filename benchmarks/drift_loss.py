"""Speed and peak memory of the drift loss (forward + backward, float32) against baselines in the same run.

Implementations, each timed in this process right beside ours, in two rounds:
  * ``eager``: a straightforward eager PyTorch transcription of the same math (kept below);
  * ``ours-eager`` and ``compiled``: ``raydrift.method.drift.drift_loss`` eager and with ``compile=True``
    (what training uses: on CPU raydrift's own kernels, raydrift/method/native);
  * ``inductor``: ``compile=True`` with ``RAYDRIFT_NATIVE=0``, i.e. ``torch.compile`` of the torch field (what
    GPUs run, and CPUs where the kernels cannot be built);
  * ``official``: the authors' ``drift_loss`` (github.com/lambertae/drifting, ``drift_loss.py``) under
    ``jax.jit(jax.value_and_grad(...))``, with ``--official PATH``. It is not part of this project: fetch
    the authors' repository yourself (see benchmarks/README.md); JAX is the optional ``bench`` extra
    (``pip install -e '.[bench]'``).

Each round warms every implementation up with two calls (compilation), then times ``--repeats`` calls of
each, the implementations taking turns call by call (so that a slow spell of the machine falls on all of
them alike), and reports each one's median. Peak memory is measured per implementation in a fresh subprocess: the extra
resident memory of one forward+backward over the inputs (VmHWM after resetting it, minus VmRSS before;
large blocks are mmapped so freed memory leaves RSS; raydrift's reused scratch buffer is released before,
so that it counts).

    python benchmarks/drift_loss.py [--official PATH/drift_loss.py] [--threads 2] [--repeats 7]
        [--rounds 2] [--shape G,Cg,Cp,Cn,S ...] [--no-memory]
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from raydrift.method.drift import drift_loss  # noqa: E402
from raydrift.method.field_cpu import release_scratch  # noqa: E402

SHAPES = [(10, 64, 64, 0, 1024), (2560, 32, 32, 0, 64), (40, 128, 128, 32, 512), (1, 1024, 1024, 0, 2)]
TAUS = (0.02, 0.05, 0.2)
TARGET = 0.6  # ours / official, on every shape
FETCH_HINT = (
    "get the authors' code with `git clone https://github.com/lambertae/drifting` and pass "
    "--official drifting/drift_loss.py"
)


class UsageError(Exception):
    """Bad command-line input: printed without a traceback, exit status 2."""


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


def load_official(path):
    """The authors' ``drift_loss`` from their ``drift_loss.py``; UsageError with the fix if it cannot run."""
    if not os.path.isfile(path):
        raise UsageError(f"--official: no file {path!r}; {FETCH_HINT}")
    try:
        import einops  # noqa: F401  (the authors' file imports it)
        import jax  # noqa: F401
    except ImportError as err:
        raise UsageError(
            f"--official needs JAX and einops ({err}): pip install -e '.[bench]' (or: pip install jax einops)"
        ) from err
    spec = importlib.util.spec_from_file_location("authors_drift_loss", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise UsageError(f"--official: cannot import {path!r}: {err!r}") from err
    fn = getattr(module, "drift_loss", None)
    if fn is None:
        raise UsageError(f"--official: {path!r} defines no drift_loss; {FETCH_HINT}")
    try:
        official_step(fn)(*make_inputs((1, 3, 2, 1, 2)))()
    except TypeError as err:
        if "a_min" not in str(err):
            raise
        with open(path) as f:
            lines = [i for i, line in enumerate(f, 1) if re.search(r"\ba_min\s*=", line)]
        raise UsageError(
            f"--official: {path} calls jnp.clip(..., a_min=...), which this JAX no longer accepts; replace "
            f"`a_min=` by `min=` on line(s) {', '.join(map(str, lines))}: sed -i 's/a_min=/min=/' {path}"
        ) from err
    return fn


def official_step(fn):
    """``step(gen, pos, neg, w_neg)`` -> a call of ``jax.jit(value_and_grad)`` of the authors' loss."""
    import jax
    import jax.numpy as jnp

    def loss_fn(gen, pos, neg, w_neg):
        loss, _ = fn(gen, pos, neg if neg.shape[1] else None, weight_neg=w_neg if neg.shape[1] else None, R_list=TAUS)
        return loss.sum()

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
            if impl == "inductor":
                os.environ["RAYDRIFT_NATIVE"] = "0"
            try:
                loss, _ = drift_loss(
                    gen,
                    pos,
                    neg,
                    weight_neg=w_neg if neg.shape[1] else None,
                    temperatures=TAUS,
                    compile=impl in ("compiled", "inductor"),
                )
            finally:
                os.environ.pop("RAYDRIFT_NATIVE", None)
        loss.sum().backward()

    return run


def make_step(impl, inputs, official_path):
    if impl == "official":
        return official_step(load_official(official_path))(*inputs)
    return torch_step(impl, *inputs)


def time_round(steps, repeats):
    """Median ms per implementation: two warm-up calls each, then ``repeats`` calls of each, taking turns."""
    for fn in steps.values():
        for _ in range(2):  # warm-up (and compilation)
            fn()
    times = {impl: [] for impl in steps}
    for _ in range(repeats):
        for impl, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            times[impl].append((time.perf_counter() - t0) * 1e3)
    return {impl: statistics.median(t) for impl, t in times.items()}


def _rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(field)


def measure_memory(impl, shape, official_path=None):
    """Run in a fresh process: extra peak RSS (MiB) of one forward+backward after warm-up."""
    fn = make_step(impl, make_inputs(shape), official_path)
    fn()
    fn()
    release_scratch()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = _rss_kib("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    fn()
    return (_rss_kib("VmHWM:") - before) / 1024


def memory_in_subprocess(impl, shape, threads, official_path):
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS=str(threads))
    code = (
        "import sys, json, warnings; warnings.simplefilter('ignore'); sys.argv=['x'];"
        f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r});"
        f"import torch; torch.set_num_threads({threads});"
        f"import drift_loss as b; print(json.dumps(b.measure_memory({impl!r}, {tuple(shape)!r}, {official_path!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _shape(text):
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 5 or min(shape) < 0 or shape[1] < 2 or shape[2] < 1 or shape[0] < 1 or shape[4] < 1:
        raise argparse.ArgumentTypeError(f"need G,Cg,Cp,Cn,S with G>=1, Cg>=2, Cp>=1, Cn>=0, S>=1; got {text!r}")
    return shape


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", metavar="PATH", help="the authors' drift_loss.py (lambertae/drifting)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7, help="timed calls per round (median)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the implementations")
    ap.add_argument("--shape", type=_shape, action="append", help="G,Cg,Cp,Cn,S (repeatable; default: 4 shapes)")
    ap.add_argument("--no-eager", action="store_true", help="time only compiled (and official): no baselines")
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.repeats < 1 or args.rounds < 1:
        ap.error("--threads, --repeats and --rounds must be >= 1")
    return args


def run(args):
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    impls = ([] if args.no_eager else ["eager", "ours-eager", "inductor"]) + ["compiled"]
    if args.official:
        load_official(args.official)  # fails early, with the fix, before anything is timed
        impls.append("official")
    shapes = args.shape or SHAPES
    print(
        f"drift loss fwd+bwd, float32, {args.threads} threads, T={len(TAUS)}; per round the median of "
        f"{args.repeats} calls after 2 warm-up calls, {args.rounds} rounds interleaved (ms: round 1 / round 2 ...)"
    )
    ratios = {}
    for shape in shapes:
        inputs = make_inputs(shape)
        steps = {impl: make_step(impl, inputs, args.official) for impl in impls}
        ms = {impl: [] for impl in impls}
        for _ in range(args.rounds):
            for impl, t in time_round(steps, args.repeats).items():
                ms[impl].append(t)
        print(f"{shape}:")
        for impl in impls:
            print(f"  {impl:>11}: " + " / ".join(f"{t:.1f}" for t in ms[impl]) + " ms")
        if "eager" in impls:
            print(f"  compiled vs eager transcription: {statistics.median(ms['eager']) / min(ms['compiled']):.2f}x")
            gain = statistics.median(ms["inductor"]) / statistics.median(ms["compiled"])
            print(f"  compiled (raydrift's CPU kernels) vs inductor: {gain:.2f}x")
        if "official" in impls:
            ratios[shape] = [c / o for c, o in zip(ms["compiled"], ms["official"])]
            print("  ours / official: " + " / ".join(f"{r:.2f}" for r in ratios[shape]))
        if not args.no_memory:
            peaks = {i: memory_in_subprocess(i, shape, args.threads, args.official) for i in impls}
            print("  peak MiB: " + ", ".join(f"{i} {p:.0f}" for i, p in peaks.items()))
        sys.stdout.flush()
    if ratios:
        worst = max(max(r) for r in ratios.values())
        met = "met" if worst <= TARGET else "NOT met"
        print(f"worst ours/official over shapes and rounds: {worst:.2f} (target <= {TARGET}: {met})")


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
