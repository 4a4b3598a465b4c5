"""The whole GPU check in one command: drift loss speed, feature-space step speed, and an MNIST training
run for a fixed wall-clock budget with its evaluation; everything it measures goes into one folder.

    python benchmarks/gpu_check.py --mnist DIR --out OUT [--device cuda] [--budget-s 240] [--official PATH]
    python benchmarks/gpu_check.py --mnist DIR --out OUT --device cpu --budget-s 30      # CPU (CI runs it)

Needs only torch, torchvision, numpy, scikit-learn and pillow, and raydrift's core modules from this
checkout (no Ray, W&B, polars, hyperopt, torch-fidelity; no network, no install); JAX is optional. Written
for the project's GPU machine (Python 3.12, torch 2.11) as well as the development one (Python 3.11).

Sections, in this order (``--skip`` any of them; a section that fails is recorded and the others still run;
results.json and summary.md are rewritten after each, so a run cut short keeps what it measured):

``train``   MNIST (idx files in ``--mnist``) in a plain process for ``--budget-s`` seconds of training at the
            ``gpu`` preset (``mnist`` on CPU; ``--preset``, ``--set`` override), then LeNet-FID and
            within-class diversity of ``--num-samples`` samples vs the test split, a sample grid, and the
            samples themselves (uint8, as scored) for ``raydrift evaluate OUT/samples.npz --feature-net
            inception --reference test ...`` (TF-Inception FID) on a machine with the Inception weights.
``drift``   ``drift_loss`` forward+backward at the four shapes of ``benchmarks/drift_loss.py`` and an
            ImageNet-scale feature key (G=256 groups = 64 images x 4 locations, Cg=Cp=64, S=768): eager,
            ``torch.compile``d, and with ``--official PATH`` (the authors' JAX ``drift_loss.py``) that code
            under ``jax.jit`` at JAX's default matmul precision and at ``highest`` (full float32, as ours).
``feature`` one feature-space training step against the earlier reproduction's per-vector loop
            (``benchmarks/feature_loss.py``'s ``measure``).

Files in ``--out``: summary.md, results.json, train_log.txt, metrics.jsonl, grid.png, samples.npz.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import inspect
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import types
import warnings
from pathlib import Path
from typing import Any

import torch

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from raydrift.config import apply_overrides, get_preset, to_dict  # noqa: E402
from raydrift.method.drift import drift_loss  # noqa: E402

TAUS = (0.02, 0.05, 0.2)
DRIFT_SHAPES = [  # (G, Cg, Cp, Cn, S): benchmarks/drift_loss.py's four, then an ImageNet-scale feature key
    (10, 64, 64, 0, 1024),
    (2560, 32, 32, 0, 64),
    (40, 128, 128, 32, 512),
    (1, 1024, 1024, 0, 2),
    (256, 64, 64, 0, 768),
]
SMOKE_SHAPES = [(4, 16, 16, 0, 64), (8, 8, 8, 4, 96)]  # --smoke: checks the code runs, measures nothing
TARGETS = {"compiled/jax": 0.7, "feature speed-up": 20.0, "inception_fid_4096": 10.0}


# ---- drift loss ----------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_ms(fn, repeats: int, device: torch.device, warmup: int = 3) -> float:
    for _ in range(warmup):  # includes compilation
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _inputs(shape, device: torch.device):
    G, Cg, Cp, Cn, S = shape
    g = torch.Generator().manual_seed(0)
    gen = torch.randn(G, Cg, S, generator=g)
    pos = torch.randn(G, Cp, S, generator=g) + 0.5
    neg = torch.randn(G, Cn, S, generator=g)
    w_neg = torch.rand(G, Cn, generator=g) * 2
    return gen.to(device).requires_grad_(True), pos.to(device), neg.to(device), w_neg.to(device)


def _torch_step(compiled: bool, gen, pos, neg, w_neg):
    has_neg = neg.shape[1] > 0

    def run():
        gen.grad = None
        loss, _ = drift_loss(
            gen,
            pos,
            neg if has_neg else None,
            weight_neg=w_neg if has_neg else None,
            temperatures=TAUS,
            compile=compiled,
        )
        loss.sum().backward()

    return run


def _official_steps(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``{name: make_step(gen, pos, neg, w_neg)}`` for the authors' JAX drift_loss at two matmul precisions,
    and facts about the JAX install. Raises if JAX or the file cannot be used."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave the GPU's memory to torch
    import jax
    import jax.numpy as jnp

    facts = {}
    if importlib.util.find_spec("einops") is None:  # the file imports einops.repeat but never calls it
        shim = types.ModuleType("einops")
        shim.repeat = _einops_missing
        sys.modules["einops"] = shim
        facts["einops"] = "not installed: a stub stood in (drift_loss.py imports repeat, never calls it)"
    if "a_min" not in inspect.signature(jnp.clip).parameters:  # newer JAX dropped numpy's old names
        jnp.clip = _old_clip(jnp.clip)
        facts["jnp.clip"] = f"JAX {jax.__version__} has no a_min/a_max: a wrapper maps them to min/max"
    spec = importlib.util.spec_from_file_location("official_drift_loss", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    official = module.drift_loss

    def total(gen, pos, neg, w_neg):
        loss, _ = official(gen, pos, neg, weight_neg=w_neg, R_list=TAUS)
        return loss.sum()

    def maker(precision: str | None):
        grad = jax.jit(jax.value_and_grad(total))

        def make(gen, pos, neg, w_neg):
            has_neg = neg.shape[1] > 0
            args = [jnp.asarray(t.detach().cpu().numpy()) for t in (gen, pos)]
            args += [jnp.asarray(t.cpu().numpy()) if has_neg else None for t in (neg, w_neg)]

            def run():
                if precision is None:
                    return jax.block_until_ready(grad(*args))
                with jax.default_matmul_precision(precision):
                    return jax.block_until_ready(grad(*args))

            return run

        return make

    facts |= {"jax": jax.__version__, "jax_devices": [str(d) for d in jax.devices()], "official": str(path)}
    return {"jax": maker(None), "jax-fp32": maker("highest")}, facts


def _old_clip(clip):
    """``jnp.clip`` accepting the ``a_min``/``a_max`` keywords the authors' code passes."""

    def wrapped(x, min=None, max=None, *, a_min=None, a_max=None, **kw):  # noqa: A002
        return clip(x, min=a_min if min is None else min, max=a_max if max is None else max, **kw)

    return wrapped


def _einops_missing(*args, **kwargs):
    raise NotImplementedError("einops is not installed")


def drift_section(args, device: torch.device) -> dict[str, Any]:
    shapes = SMOKE_SHAPES if args.smoke else DRIFT_SHAPES
    official, facts = {}, {}
    if args.official:
        if Path(args.official).is_file():
            try:
                official, facts = _official_steps(args.official)
            except Exception as err:  # no JAX, no CUDA for JAX, another file: recorded, torch goes on
                facts = {"official_skipped": f"{type(err).__name__}: {err}"}
        else:
            facts = {"official_skipped": f"{args.official} does not exist"}
    else:
        facts = {"official_skipped": "no --official PATH given"}
    rows = []
    for shape in shapes:
        row: dict[str, Any] = {"shape": list(shape)}
        for name, compiled in (("eager", False), ("compiled", True)):
            inputs = _inputs(shape, device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            row[f"{name}_ms"] = _time_ms(_torch_step(compiled, *inputs), args.repeats, device)
            if device.type == "cuda":
                row[f"{name}_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
            del inputs
        for name, make in official.items():
            try:
                step = make(*_inputs(shape, torch.device("cpu")))
                row[f"{name}_ms"] = _time_ms(step, args.repeats, device)
                gen, pos, neg, w_neg = _inputs(shape, device)  # the same inputs: the same loss?
                ours = drift_loss(gen, pos, neg if shape[3] else None, weight_neg=w_neg if shape[3] else None)[0]
                ours = ours.sum().item()
                row[f"{name}_loss_rel_diff"] = abs(float(step()[0]) - ours) / abs(ours)
            except Exception as err:
                row[f"{name}_error"] = f"{type(err).__name__}: {str(err)[:300]}"
        row["eager/compiled"] = row["eager_ms"] / row["compiled_ms"]
        if "jax_ms" in row:
            row["compiled/jax"] = row["compiled_ms"] / row["jax_ms"]
        if "jax-fp32_ms" in row:
            row["compiled/jax-fp32"] = row["compiled_ms"] / row["jax-fp32_ms"]
        log(f"drift {shape}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items() if isinstance(v, float)))
        rows.append(row)
    return {"rows": rows, "repeats": args.repeats, "temperatures": TAUS} | facts


# ---- feature-space step --------------------------------------------------------------------------------


def feature_section(args, device: torch.device) -> dict[str, Any]:
    import feature_loss

    kw = dict(repeats=1, classes=2, n=8, input_size=32) if args.smoke else dict(repeats=3)
    r = feature_loss.measure(str(device), **kw)
    r["speedup_step"] = r["s_loop"] / r["s_ours"]
    r["speedup_loss"] = (r["s_loop"] - r["s_floor"]) / max(r["s_ours"] - r["s_floor"], 1e-9)
    log(f"feature step: ours {r['s_ours']:.3f} s, loop {r['s_loop']:.3f} s, {r['speedup_step']:.1f}x")
    return r


# ---- MNIST training ------------------------------------------------------------------------------------


def train_section(args, device: torch.device, out: Path, work: Path) -> dict[str, Any]:
    from raydrift.data.datasets import load_split
    from raydrift.data.images import out_of_range, to_uint8
    from raydrift.evaluation.evaluator import Evaluator
    from raydrift.evaluation.samples import save_samples
    from raydrift.training.loop import train
    from raydrift.training.rundir import PlainReporter, read_history

    preset = args.preset or ("gpu" if device.type == "cuda" else "mnist")
    cfg = apply_overrides(
        get_preset(preset),
        [
            f"data.root={args.mnist}",
            "data.dataset=mnist",
            f"output_dir={work}",
            "train.steps=10000000",  # the budget ends the run; LR warm-up and EMA as in the preset
            "eval.every=0",
            "train.checkpoint_every=0",
            "train.keep_checkpoints=1",
            f"eval.num_samples={args.num_samples}",
            "eval.reference=test",
            "eval.feature_net=classifier",
        ]
        + list(args.sets),
    )
    data = load_split(cfg.data, "train", seed=cfg.train.seed)
    t0 = time.perf_counter()
    evaluator = Evaluator(cfg, data, device, work / "samples")  # LeNet + reference stats: before the clock
    setup_s = time.perf_counter() - t0
    log_lines: list[str] = []

    def log_train(line: str) -> None:
        log_lines.append(line)
        log(line)

    result: dict[str, Any] = {}

    def final_evaluation(ema, step: int) -> dict[str, Any]:
        result["train_s"] = time.perf_counter() - clock["start"]
        if device.type == "cuda":
            result["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        result["params"] = sum(p.numel() for p in ema.parameters())
        t = time.perf_counter()
        ema.eval()
        raw = evaluator.generate(ema, evaluator.labels)
        images = to_uint8(raw).cpu()
        metrics = evaluator.score(images) | {"eval/clamped_frac": out_of_range(raw)}
        labels = evaluator.labels.cpu()
        meta = {"config": to_dict(cfg), "step": step, "preset": preset, "source": "benchmarks/gpu_check.py"}
        save_samples(out / "samples.npz", images, labels, meta)
        shutil.copy(evaluator.save_grid(ema, step), out / "grid.png")
        result["eval_s"] = time.perf_counter() - t
        return metrics

    clock = {"start": time.perf_counter()}
    deadline = clock["start"] + args.budget_s
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    state = train(
        cfg,
        PlainReporter(work / "run"),
        device=device,
        evaluator_factory=lambda c, d, dev: final_evaluation,
        log=log_train,
        stop=lambda s: time.perf_counter() >= deadline,
    )
    torch.set_float32_matmul_precision("highest")  # the default again (train.tf32 set it) for the sections after
    (out / "train_log.txt").write_text("\n".join(log_lines) + "\n")
    shutil.copy(work / "run" / "metrics.jsonl", out / "metrics.jsonl")
    history = read_history(work / "run")
    windows = [r["perf/steps_per_s"] for r in history if "perf/steps_per_s" in r]
    images_per_step = min(cfg.drift.classes_per_step, data.num_classes) * cfg.drift.n_neg
    last = history[-1]
    steady = statistics.median(windows[1:]) if len(windows) > 1 else (windows[0] if windows else float("nan"))
    result |= {
        "preset": preset,
        "overrides": list(args.sets),
        "config": to_dict(cfg),
        "steps": state.step,
        "images_seen": state.images_seen,
        "budget_s": args.budget_s,
        "setup_s": setup_s,
        "steps_per_s": state.step / result["train_s"],
        "steps_per_s_steady": steady,
        "images_per_s_steady": steady * images_per_step,
        "images_per_step": images_per_step,
        "eval": {k: v for k, v in last.items() if k.startswith("eval/")},
    }
    log(f"trained {state.step} steps in {result['train_s']:.0f} s; FID {last.get('eval/fid')}")
    return result


# ---- report --------------------------------------------------------------------------------------------


def log(line: str) -> None:
    print(line, flush=True)


def environment(device: torch.device) -> dict[str, Any]:
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "cpu_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        env |= {"gpu": torch.cuda.get_device_name(device), "cuda": torch.version.cuda}
    return env


def _f(v, fmt=".2f") -> str:
    return format(v, fmt) if isinstance(v, (int, float)) else "-"


def summary_markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = [
        "# GPU check",
        "",
        f"{env.get('gpu', env['device'])}, torch {env['torch']}, Python {env['python']}; "
        f"total {results['total_s']:.0f} s. Sections: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in results["section_s"].items()),
        "",
    ]
    for name, err in results.get("errors", {}).items():
        lines += [f"**{name} failed**: `{err.splitlines()[-1]}` (traceback in results.json)", ""]
    if "drift" in results:
        d = results["drift"]
        cols = ["eager", "compiled", "jax", "jax-fp32"]
        lines += [
            f"## Drift loss, forward + backward (median of {d['repeats']}, ms)",
            "",
            f"JAX: {d.get('official_skipped') or d.get('jax', '') + ' on ' + ', '.join(d.get('jax_devices', []))}",
            "",
            "| G, Cg, Cp, Cn, S | " + " | ".join(cols) + " | eager/compiled | compiled/jax (target <= 0.7) |",
            "|---|" + "---:|" * (len(cols) + 2),
        ]
        for r in d["rows"]:
            cells = [_f(r.get(f"{c}_ms"), ".2f") for c in cols]
            lines.append(
                f"| {', '.join(map(str, r['shape']))} | "
                + " | ".join(cells)
                + f" | {_f(r['eager/compiled'])} | {_f(r.get('compiled/jax'))} |"
            )
        lines.append("")
    if "feature" in results:
        f = results["feature"]
        lines += [
            "## Feature-space step vs the per-vector loop",
            "",
            f"{f['classes']} classes x {f['n']}, resnet18 @ {f['input_size']} px, {f['n_keys']} keys, "
            f"{f['n_terms']} loop terms",
            "",
            "| implementation | s / step |",
            "|---|---:|",
            f"| per-vector loop | {f['s_loop']:.3f} |",
            f"| FeatureObjective | {f['s_ours']:.3f} |",
            f"| shared floor (generator + encoder) | {f['s_floor']:.3f} |",
            "",
            f"Speed-up of the step: **{f['speedup_step']:.1f}x** (target >= 20x); of the loss alone: "
            f"{f['speedup_loss']:.1f}x.",
            "",
        ]
    if "train" in results:
        t, e = results["train"], results["train"]["eval"]
        lines += [
            f"## MNIST training: preset `{t['preset']}` {' '.join(t['overrides'])}",
            "",
            f"{t['params'] / 1e6:.1f}M parameters, {t['images_per_step']} images per step; "
            f"{t['steps']} steps in {t['train_s']:.0f} s (budget {t['budget_s']:.0f} s; "
            f"setup {t['setup_s']:.0f} s and evaluation {t['eval_s']:.0f} s outside it)",
            "",
            "| steps/s (all) | steps/s (steady) | images/s (steady) | peak GPU MiB |",
            "|---:|---:|---:|---:|",
            f"| {t['steps_per_s']:.2f} | {_f(t['steps_per_s_steady'])} | {_f(t['images_per_s_steady'], '.0f')} | "
            f"{_f(t.get('peak_gpu_mib'), '.0f')} |",
            "",
            f"LeNet-FID ({e.get('eval/fid_net')}, {e.get('eval/fid_samples')} samples vs {e.get('eval/fid_ref')}): "
            f"**{_f(e.get('eval/fid'))}** (class-mean generator {_f(e.get('eval/fid_classmean'))}, real data "
            f"{_f(e.get('eval/fid_real'))}); within-class diversity {_f(e.get('eval/diversity'), '.3f')} (real "
            f"{_f(e.get('eval/diversity_real'), '.3f')}); IS {_f(e.get('eval/is'))}; clamped "
            f"{_f(e.get('eval/clamped_frac'), '.4f')}.",
            "",
            "Samples: `samples.npz` (uint8 as scored), grid: `grid.png`. TF-Inception FID@N vs test, on a machine "
            "with the weights: `raydrift evaluate samples.npz --feature-net inception --reference test "
            "--inception-weights FILE --set data.root=MNIST_DIR --record evaluations.jsonl` (target <= 10 "
            "at 4096).",
            "",
        ]
    return "\n".join(lines)


def write_report(results: dict[str, Any], out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "summary.md").write_text(summary_markdown(copy.deepcopy(results)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="folder for every result (created)")
    ap.add_argument("--mnist", type=Path, default=None, help="folder with MNIST's four idx files (train section)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--budget-s", type=float, default=240.0, help="training wall-clock budget (s)")
    ap.add_argument("--official", default=None, help="the authors' JAX drift_loss.py (lambertae/drifting)")
    ap.add_argument("--preset", default=None, help="training preset (default: gpu on cuda, mnist on cpu)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="config override")
    ap.add_argument("--num-samples", type=int, default=4096, help="samples evaluated and saved")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per drift shape (20 cuda, 5 cpu)")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: drift,feature,train")
    ap.add_argument("--smoke", action="store_true", help="tiny drift shapes and feature step (CI: runs, no numbers)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = ap.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    if unknown := skip - {"drift", "feature", "train"}:
        ap.error(f"--skip takes drift, feature, train; got {', '.join(sorted(unknown))}")
    if "train" not in skip and args.mnist is None:
        ap.error("--mnist DIR is needed for the train section (or --skip train)")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but torch sees no GPU; use --device cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.repeats = args.repeats or (20 if device.type == "cuda" else 5)
    warnings.filterwarnings("ignore", message=".*_prims_common.check.*", category=FutureWarning)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    results: dict[str, Any] = {"environment": environment(device), "args": vars(args) | {"out": str(args.out)}}
    results["section_s"], results["total_s"], errors = {}, 0.0, {}
    results["errors"] = errors
    start = time.perf_counter()
    sections = {  # the training first: what the GPU is mostly for, and what a run cut short must not lose
        "train": lambda: train_section(args, device, args.out, work),
        "drift": lambda: drift_section(args, device),
        "feature": lambda: feature_section(args, device),
    }
    for name, run in sections.items():
        if name in skip:
            continue
        t = time.perf_counter()
        try:
            results[name] = run()
        except Exception:
            errors[name] = traceback.format_exc()
            log(f"{name} failed:\n{errors[name]}")
        results["section_s"][name] = time.perf_counter() - t
        results["total_s"] = time.perf_counter() - start
        results["errors"] = errors
        write_report(results, args.out)  # after every section: a run cut short keeps what it measured
    write_report(results, args.out)
    shutil.rmtree(work, ignore_errors=True)
    log(f"wrote {args.out}/summary.md and results.json ({results['total_s']:.0f} s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
