"""Pixel-space vs feature-space drifting on real MNIST at the same wall-clock budget on this CPU.

Both runs use the ``mnist`` preset unchanged (its DiT generator and per-class sample counts, temperatures
(0.02, 0.05, 0.2), affinity floor 0) and differ only in ``drift.space``: ``pixel``, or
``feature`` with raydrift's own MAE encoder (``drift.encoder=mae``, full A.5 feature set of its four stages
plus the raw-pixel and per-channel RMS keys). Each run trains until ``--minutes`` of wall clock have passed
(checked at every checkpoint, every ``--ckpt-every`` steps). Then both EMA generators from the last
checkpoints go through one evaluator (the same classifier and reference statistics): LeNet-FID on 2000
class-balanced samples against the train split, within-class diversity, and the yardsticks (class-mean
generator FID, real test-split FID, real diversity); the sample grids go to ``<out>/<space>/samples/``.

The two runs train in parallel, one thread each, so the load of a shared machine hits both alike.

    nice python benchmarks/pixel_vs_feature_mnist.py --root ../shared/data/mnist --mae mae-mnist.pt \\
        [--minutes 10] [--out runs/pixel_vs_feature]

``--mae`` is a weights file from ``raydrift encoder train --dataset mnist --root ... --out mae-mnist.pt``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from raydrift.config import apply_overrides  # noqa: E402
from raydrift.config.presets import get_preset  # noqa: E402
from raydrift.data.datasets import load_split  # noqa: E402
from raydrift.evaluation.evaluator import Evaluator  # noqa: E402
from raydrift.nets.generators import build_generator  # noqa: E402
from raydrift.training.checkpoint import latest_checkpoint, load_checkpoint  # noqa: E402
from raydrift.training.loop import train  # noqa: E402
from raydrift.training.rundir import PlainReporter  # noqa: E402

SHOWN = (
    "eval/fid",
    "eval/fid_classmean",
    "eval/fid_real",
    "eval/diversity",
    "eval/diversity_real",
    "eval/is",
)


class BudgetReached(Exception):
    pass


class BudgetReporter(PlainReporter):
    """A plain reporter that stops training at the first checkpoint after ``seconds`` of wall clock."""

    def __init__(self, run_dir, seconds: float):
        super().__init__(run_dir)
        self.deadline = time.perf_counter() + seconds

    def report(self, metrics, checkpoint=None):
        super().report(metrics, checkpoint)
        if checkpoint is not None and time.perf_counter() > self.deadline:
            raise BudgetReached(metrics["step"])


def config(space: str, args):
    sets = [
        f"data.root={args.root}",
        "train.steps=1000000",
        f"train.checkpoint_every={args.ckpt_every}",
        "train.keep_checkpoints=1",
        f"train.log_every={args.ckpt_every}",
        "train.threads=1",
        "eval.every=0",
        f"train.seed={args.seed}",
        f"drift.space={space}",
    ]
    if space == "feature":
        sets += ["drift.encoder=mae", f"drift.encoder_weights={args.mae}"]
    return apply_overrides(get_preset("mnist"), sets + args.set)


def train_one(space: str, args) -> None:
    """Train ``space`` until the budget is spent; write ``train.json`` (steps, seconds, last checkpoint)."""
    torch.set_num_threads(1)
    run_dir = Path(args.out) / space
    reporter = BudgetReporter(run_dir, args.minutes * 60)
    t0 = time.perf_counter()
    try:
        train(config(space, args), reporter, log=lambda s: print(f"[{space}] {s}", flush=True))
    except BudgetReached:
        pass
    ckpt = latest_checkpoint(reporter.checkpoint_root())
    info = {"space": space, "train_s": time.perf_counter() - t0, "checkpoint": str(ckpt)}
    (run_dir / "train.json").write_text(json.dumps(info, indent=2))


def evaluate_all(args) -> list[dict]:
    """Both runs' last EMA generators through one evaluator (the same classifier and reference stats)."""
    torch.set_num_threads(2)
    cfg = config("pixel", args)
    data = load_split(cfg.data, "train", seed=cfg.train.seed)
    evaluator = None
    rows = []
    for space in ("pixel", "feature"):
        info = json.loads((Path(args.out) / space / "train.json").read_text())
        ckpt = load_checkpoint(info["checkpoint"])
        ema = build_generator(cfg.model, data.sample_shape, data.num_classes)
        ema.load_state_dict(ckpt["ema"])
        run_dir = Path(args.out) / space
        if evaluator is None:
            evaluator = Evaluator(cfg, data, "cpu", run_dir / "samples")
        evaluator.sample_dir = run_dir / "samples"
        metrics = evaluator.evaluate(ema.eval(), ckpt["step"])
        row = info | {"steps": ckpt["step"], "images_seen": ckpt["images_seen"]}
        row |= {k: metrics.get(k) for k in (*SHOWN, "eval/grid", "eval/fid_net", "eval/fid_samples")}
        (run_dir / "result.json").write_text(json.dumps(row, indent=2))
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="MNIST directory (the four idx files)")
    ap.add_argument("--mae", required=True, help="MAE weights from `raydrift encoder train --dataset mnist`")
    ap.add_argument("--minutes", type=float, default=10.0, help="wall-clock training budget per run")
    ap.add_argument("--ckpt-every", type=int, default=25, help="steps between budget checks (checkpoints)")
    ap.add_argument("--out", default="runs/pixel_vs_feature")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], help="extra overrides for both runs (key=value)")
    ap.add_argument("--only", choices=["pixel", "feature"], help="train one space in this process")
    ap.add_argument("--eval-only", action="store_true", help="evaluate the runs already in --out")
    args = ap.parse_args()
    if not Path(args.mae).is_file():
        sys.exit(f"no MAE weights at {args.mae}: make them with `raydrift encoder train --dataset mnist --out PATH`")
    if args.only:
        train_one(args.only, args)
        return
    if not args.eval_only:  # both spaces at once, one process (and thread) each
        procs = [subprocess.Popen([sys.executable, __file__, *sys.argv[1:], "--only", s]) for s in ("pixel", "feature")]
        if any(p.wait() for p in procs):
            sys.exit("a run failed")
    rows = evaluate_all(args)
    print()
    print("| space | steps | train min | FID | class-mean FID | real FID | diversity | real diversity | IS |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        v = [r[k] for k in SHOWN]
        print(
            f"| {r['space']} | {r['steps']} | {r['train_s'] / 60:.1f} | {v[0]:.2f} | {v[1]:.2f} | {v[2]:.2f} | "
            f"{v[3]:.4f} | {v[4]:.4f} | {v[5]:.2f} |"
        )
    print(f"FID: {rows[0]['eval/fid_net']}, {rows[0]['eval/fid_samples']} samples; grids: ", end="")
    print(", ".join(r["eval/grid"] for r in rows))


if __name__ == "__main__":
    main()
