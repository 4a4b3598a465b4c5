"""Frechet distance: raydrift's symmetric-eigenvalue form against scipy's sqrtm (pytorch-fid's formula).

    python benchmarks/frechet.py                      # d = 2048 (Inception pool3), 4096 samples per side
    python benchmarks/frechet.py --dim 512 --repeats 3

Prints each method's wall time (best of --repeats, all measured in this run), the speed ratio against
sqrtm, and the relative difference of the distances.
"""

import argparse
import time

import numpy as np
import scipy.linalg
import torch

from raydrift.evaluation.metrics import frechet_distance, trace_sqrt_product


def fid_sqrtm(mu1, c1, mu2, c2) -> float:
    covmean = scipy.linalg.sqrtm(c1 @ c2).real
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(c1) + np.trace(c2) - 2 * np.trace(covmean))


def fid_eigh(mu1, c1, mu2, c2) -> float:
    tr = trace_sqrt_product(c1, c2, method="eigh")
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(c1) + np.trace(c2) - 2 * tr)


def best_time(fn, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return min(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    d = args.dim
    stats = []
    for shift in (0.0, 0.3):
        mix = np.eye(d) + rng.standard_normal((d, d)) / (2 * np.sqrt(d))
        f = rng.standard_normal((args.samples, d)) @ mix + shift
        stats.append((f.mean(0), np.cov(f, rowvar=False)))
    (mu1, c1), (mu2, c2) = stats

    print(f"d={d} samples={args.samples} torch_threads={torch.get_num_threads()}")
    t_ref, ref = best_time(lambda: fid_sqrtm(mu1, c1, mu2, c2), args.repeats)
    print(f"scipy sqrtm            {t_ref:8.2f} s  fd={ref:.10g}")
    for name, fn in (
        ("raydrift auto (chol)", lambda: frechet_distance(mu1, c1, mu2, c2)),
        ("raydrift eigh", lambda: fid_eigh(mu1, c1, mu2, c2)),
    ):
        t, value = best_time(fn, args.repeats)
        rel = abs(value / ref - 1)
        print(f"{name:22s} {t:8.2f} s  fd={value:.10g}  speedup x{t_ref / t:.1f}  rel diff {rel:.1e}")


if __name__ == "__main__":
    main()
