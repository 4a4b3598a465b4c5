"""PNG plots: metric curves per group (mean line and 95% CI band over seeds) and sample grids of the groups
side by side at a matched step.

Curves: each run is linearly interpolated onto the union of its group's logged steps, inside its own
first and last step only (no extrapolation), so seeds that log at different steps still average; the band
is drawn where at least two runs have a value. FID/IS curves of different protocols go to separate files.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import polars as pl

from .grouping import Grouping
from .load import Results, is_protocol_metric
from .protocol import protocol_ids
from .stats import t_quantile
from .tables import display


def group_colours(grouping: Grouping) -> dict[str, tuple]:
    """One colour per group, stable across every plot of one analysis."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(grouping.labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(grouping.labels)}


def curve_band(runs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """``{"step", "n", "mean", "lo", "hi"}`` over the union of steps of ``runs`` (each ``(steps, values)``)."""
    grid = np.unique(np.concatenate([s for s, _ in runs]))
    Y = np.stack([np.interp(grid, s, v, left=np.nan, right=np.nan) for s, v in runs])
    ok = np.isfinite(Y)
    n = ok.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(ok, Y, 0.0).sum(0) / n
        sd = np.sqrt(np.where(ok, (Y - mean) ** 2, 0.0).sum(0) / (n - 1))
    t = np.array([t_quantile(int(k)) if k >= 2 else np.nan for k in n])
    half = np.where(n >= 2, t * sd / np.sqrt(np.maximum(n, 1)), np.nan)
    return {"step": grid, "n": n, "mean": mean, "lo": mean - half, "hi": mean + half}


def plot_curves(res: Results, grouping: Grouping, metric: str, path: str | Path) -> list[Path]:
    """``metric`` against step, one colour per group; one PNG per FID/IS protocol (``<stem>__P2.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res.tidy.filter(pl.col("metric") == metric).join(grouping.runs.select("run", "group"), on="run")
    ids = protocol_ids(res) if is_protocol_metric(metric) else {}
    colours, path, out = group_colours(grouping), Path(path), []
    for protocol, pid in ids.items() or [(None, None)]:
        part = rows.filter(pl.col("protocol").eq_missing(protocol)) if pid else rows
        if part.height == 0:
            continue
        fig, ax = plt.subplots(figsize=(8, 4.8), dpi=120)
        values, banded = [], False
        for label in grouping.labels:
            runs = [
                (r["step"].to_numpy().astype(float), r["value"].to_numpy())
                for _, r in part.filter(pl.col("group") == label).sort("step").group_by("run", maintain_order=True)
            ]
            if not runs:
                continue
            band, c = curve_band(runs), colours[label]
            for s, v in runs if len(runs) > 1 else []:
                ax.plot(s, v, color=c, lw=0.6, alpha=0.3)
            ax.plot(band["step"], band["mean"], color=c, lw=1.8, label=f"{label} (n={len(runs)})")
            ok = band["n"] >= 2
            if ok.any():
                banded = True
                ax.fill_between(band["step"], band["lo"], band["hi"], where=ok, color=c, alpha=0.22, lw=0)
            values.extend(v for v in band["mean"] if math.isfinite(v))
        name = display(metric) + (f" [{pid}]" if pid else "")
        if metric.startswith("eval/fid") and values and min(values) > 0 and max(values) / min(values) > 10:
            ax.set_yscale("log")
        what = "mean and 95% CI over seeds" if banded else "one seed per group (no CI band)"
        ax.set_title(f"{name}: {what}", fontsize=12)
        ax.set_xlabel("step", fontsize=11)
        ax.set_ylabel(name, fontsize=11)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9, frameon=False)
        if pid:
            fig.text(0.01, 0.01, textwrap.fill(f"{pid} = {protocol}", 140), fontsize=7, color="0.35")
        fig.tight_layout(rect=(0, 0.04 if pid else 0, 1, 1))
        target = path.with_name(f"{path.stem}__{pid}{path.suffix}") if pid else path
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target)
        plt.close(fig)
        out.append(target)
    return out


def grid_paths(res: Results, grouping: Grouping, step: int) -> pl.DataFrame:
    """``group, run, seed, step, grid``: each run's last sample grid at or before ``step``."""
    rows = res.tidy.filter(pl.col("grid").is_not_null() & (pl.col("step") <= step))
    rows = rows.sort("run", "step").group_by("run", maintain_order=True).agg(pl.col("step", "grid").last())
    return rows.join(grouping.runs.select("run", "group", "seed"), on="run").sort("seed", "run")


def plot_grids(res: Results, grouping: Grouping, step: int, path: str | Path, max_seeds: int = 3) -> Path | None:
    """Sample grids at ``step`` (the last at or before it): one column per group, one row per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    found = grid_paths(res, grouping, step)
    labels = [g for g in grouping.labels if g in set(found["group"].to_list())]
    if not labels:
        return None
    nrows = min(max_seeds, max(found.filter(pl.col("group") == g).height for g in labels))
    fig, axes = plt.subplots(nrows, len(labels), figsize=(3.2 * len(labels), 3.3 * nrows + 0.5), dpi=120, squeeze=False)
    colours = group_colours(grouping)
    for j, label in enumerate(labels):
        runs = found.filter(pl.col("group") == label).head(nrows).iter_rows(named=True)
        for i in range(nrows):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            row = next(runs, None)
            if row is None:
                ax.axis("off")
                continue
            if Path(row["grid"]).is_file():
                img = mpimg.imread(row["grid"])
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
            else:
                ax.text(0.5, 0.5, "grid file\nnot found", ha="center", va="center", transform=ax.transAxes)
            early = row["step"] < step  # an earlier grid than asked for: say so in red
            ax.set_xlabel(f"seed {row['seed']}, step {row['step']}", fontsize=9, color="red" if early else "black")
            if i == 0:
                ax.set_title(textwrap.fill(label, 28), fontsize=10, color=colours[label])
    fig.suptitle(f"Samples at step {step} (last grid at or before it)", fontsize=12)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
