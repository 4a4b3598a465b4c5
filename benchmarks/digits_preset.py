"""How long `raydrift train --preset digits` takes on this machine, and whether it learned.

Runs the preset as a user does (under Ray Train, and with ``--plain`` in this process for the ratio), then
prints each run's wall time, its last evaluation against the yardsticks (class-mean generator FID, real
within-class diversity) and the criteria the test suite checks on a shorter run (tests/test_train_ray.py).
Timings belong here, not in tests: a test asserts what was learned, never how fast.

    python benchmarks/digits_preset.py [--steps N] [--plain-too]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(mode: str, out: Path, steps: int | None) -> tuple[float, dict]:
    exe = Path(sys.executable).with_name("raydrift")
    args = [str(exe), "train", "--preset", "digits", "--set", f"output_dir={out}", "--name", mode]
    args += ["--plain"] if mode == "plain" else []
    args += ["--set", f"train.steps={steps}"] if steps else []
    t0 = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, RAY_TMPDIR="/tmp"))
    elapsed = time.monotonic() - t0
    if proc.returncode:
        sys.exit(f"{mode} run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    lines = (out / mode / "metrics.jsonl").read_text().splitlines()
    evals = [r for r in map(json.loads, lines) if r.get("eval/fid") is not None]
    return elapsed, evals[-1] | {"first_fid": evals[0]["eval/fid"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="train.steps (default: the preset's)")
    parser.add_argument("--plain-too", action="store_true", help="also time a plain process (no Ray)")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="raydrift-digits-"))
    modes = ["ray", "plain"] if args.plain_too else ["ray"]
    rows = {mode: run(mode, out, args.steps) for mode in modes}
    print("| run | wall s | step | FID | class-mean FID | step-0 FID | diversity (real) | IS | clamped |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode, (elapsed, e) in rows.items():
        print(
            f"| {mode} | {elapsed:.0f} | {e['step']} | {e['eval/fid']:.2f} | {e['eval/fid_classmean']:.2f} | "
            f"{e['first_fid']:.1f} | {e['eval/diversity']:.3f} ({e['eval/diversity_real']:.3f}) | "
            f"{e.get('eval/is', float('nan')):.2f} | {e.get('eval/clamped_frac', float('nan')):.3f} |"
        )
    if "plain" in rows:
        print(f"\nRay Train / plain wall time: {rows['ray'][0] / rows['plain'][0]:.2f}")
    e = rows["ray"][1]
    checks = {
        "FID <= class-mean FID / 5": e["eval/fid"] * 5 <= e["eval/fid_classmean"],
        "FID <= step-0 FID / 5": e["eval/fid"] * 5 <= e["first_fid"],
        "diversity >= 0.5 x real": e["eval/diversity"] >= 0.5 * e["eval/diversity_real"],
        "IS > 8": e.get("eval/is", 0) > 8,
    }
    print("\n" + "\n".join(f"{'ok  ' if ok else 'FAIL'} {name}" for name, ok in checks.items()))


if __name__ == "__main__":
    main()
