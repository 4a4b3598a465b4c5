"""PNG plots: metric curves per group (mean line and 95% CI band over seeds) and sample grids of the groups
side by side at a matched step.

Curves: each run is linearly interpolated onto the union of its group's logged steps, inside its own
first and last step only (no extrapolation), so seeds that log at different steps still average; the band
(95% t interval) is drawn where at least three runs have a value (two values give t = 12.7: noise, as in
the tables) and never outside the metric's range (FID >= 0, IS >= 1); thin lines are the seeds, an ``x``
the end of a seed that stopped before its group's last step. Groups differ in colour, line style and
marker; the legend sits right of the axes. FID/IS curves of different protocols go to separate files.
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

# A metric's range: bands are clipped to it.
BOUNDS = {"eval/fid": (0.0, None), "eval/is": (1.0, None)}
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
MIN_BAND = 3  # runs with a value needed for a band


def group_colours(grouping: Grouping) -> dict[str, tuple]:
    """One colour per group, stable across every plot of one analysis."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(grouping.labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(grouping.labels)}


def group_styles(grouping: Grouping) -> dict[str, dict]:
    """Colour, line style and marker per group: no two groups share all three (colour-blind and greyscale
    readers tell them apart by style and marker)."""
    colours = group_colours(grouping)
    return {
        label: {"color": colours[label], "ls": LINESTYLES[i % len(LINESTYLES)], "marker": MARKERS[i % len(MARKERS)]}
        for i, label in enumerate(grouping.labels)
    }


def metric_bounds(metric: str) -> tuple[float | None, float | None]:
    """``(low, high)`` of a metric's possible values (None: unbounded)."""
    return next((b for prefix, b in BOUNDS.items() if metric.startswith(prefix)), (None, None))


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


def band_limits(band: dict[str, np.ndarray], metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lo, hi, where)`` of a band to draw: inside the metric's range, where at least ``MIN_BAND`` runs
    have a value."""
    low, high = metric_bounds(metric)
    return np.clip(band["lo"], low, high), np.clip(band["hi"], low, high), band["n"] >= MIN_BAND


def plot_curves(res: Results, grouping: Grouping, metric: str, path: str | Path) -> list[Path]:
    """``metric`` against step, one colour per group; one PNG per FID/IS protocol (``<stem>__P2.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res.tidy.filter(pl.col("metric") == metric).join(grouping.runs.select("run", "group"), on="run")
    ids = protocol_ids(res) if is_protocol_metric(metric) else {}
    styles, path, out = group_styles(grouping), Path(path), []
    for protocol, pid in ids.items() or [(None, None)]:
        part = rows.filter(pl.col("protocol").eq_missing(protocol)) if pid else rows
        if part.height == 0:
            continue
        fig, ax = plt.subplots(figsize=(10, 4.8), dpi=120)
        values, banded = [], False
        low, high = metric_bounds(metric)
        for label in grouping.labels:
            runs = [
                (r["step"].to_numpy().astype(float), r["value"].to_numpy())
                for _, r in part.filter(pl.col("group") == label).sort("step").group_by("run", maintain_order=True)
            ]
            if not runs:
                continue
            band, style = curve_band(runs), styles[label]
            c = style["color"]
            last = max(s[-1] for s, _ in runs)
            for s, v in runs if len(runs) > 1 else []:
                ax.plot(s, v, color=c, lw=0.6, alpha=0.35, ls=style["ls"])
                if s[-1] < last:  # this seed ended before the group's last step
                    ax.plot(s[-1:], v[-1:], color=c, marker="x", ms=7, mew=1.5, ls="none")
            every = max(1, len(band["step"]) // 12)
            text = textwrap.shorten(label, 48, placeholder="…") + f" ({len(runs)} seed{'s' if len(runs) > 1 else ''})"
            ax.plot(band["step"], band["mean"], color=c, lw=1.8, ls=style["ls"], marker=style["marker"], ms=4.5,
                    markevery=every, label=text)  # fmt: skip
            lo, hi, ok = band_limits(band, metric)
            if ok.any():
                banded = True
                ax.fill_between(band["step"], lo, hi, where=ok, color=c, alpha=0.22, lw=0)
            values.extend(v for _, vs in runs for v in vs if math.isfinite(v))
        name = display(metric) + (f" [{pid}]" if pid else "")
        if metric.startswith("eval/fid") and values and min(values) > 0 and max(values) / min(values) > 10:
            ax.set_yscale("log")
        if values:  # the data decide the axis; a wide band is cut at its edge, not the other way round
            lo_v, hi_v = min(values), max(values)
            if ax.get_yscale() == "log":
                ax.set_ylim(lo_v / 1.3, hi_v * 1.3)
            else:
                pad = 0.05 * (hi_v - lo_v or abs(hi_v) or 1.0)
                ax.set_ylim(max(lo_v - pad, low) if low is not None else lo_v - pad, hi_v + pad)
        what = "mean over seeds, 95% CI band" if banded else f"mean over seeds (no CI band below {MIN_BAND} seeds)"
        ax.set_title(f"{name}: {what}", fontsize=12)
        ax.set_xlabel("step", fontsize=11)
        ax.set_ylabel(name, fontsize=11)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8.5, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        if pid:
            fig.text(0.01, 0.01, textwrap.fill(f"{pid} = {protocol}", 140), fontsize=7, color="0.35")
        fig.tight_layout(rect=(0, 0.04 if pid else 0, 1, 1))
        target = path.with_name(f"{path.stem}__{pid}{path.suffix}") if pid else path
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target, bbox_inches="tight")
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
