"""Plots of `raydrift analyze --out`: curves with one colour per group and visible CI bands, sample grids.

(The PNGs of this fixture were also opened and looked at while writing analysis/plots.py.)
"""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest
from fixtures.analysis_helpers import run_cli, write_run

from analysis.grouping import make_grouping
from analysis.load import load
from analysis.plots import band_limits, curve_band, group_colours, group_styles, plot_curves

LENET = {"eval/fid_net": "lenet", "eval/fid_samples": 1000, "eval/fid_ref": "digits:train", "eval/fid_ref_n": 1797}


def history(offset: float, seed: int, fid_samples: int = 1000) -> list[dict]:
    out = []
    for step in range(0, 1001, 50):
        r = {"step": step, "train/loss": 5 - 2 * step / 1000 + 0.3 * np.sin(step / 90 + seed)}
        if step % 200 == 0:
            grid = f"samples/step_{step:09d}.png"
            fid = 300 * np.exp(-step / 300) + offset + 8 * seed
            r |= {"eval/fid": fid, "eval/is": 1 + step / 500 + 0.1 * seed, "eval/grid": grid}
            r |= LENET | {"eval/fid_samples": fid_samples}
        out.append(r)
    return out


@pytest.fixture
def experiment(tmp_path):
    root, rng = tmp_path / "exp", np.random.default_rng(0)
    for kernel, offset in (("laplace", 40.0), ("gaussian", 10.0)):
        for seed in (0, 1, 2):
            d = write_run(root, f"{kernel}_s{seed}", kernel, kernel[:4], seed, history(offset, seed))
            (d / "samples").mkdir()
            for step in range(0, 1001, 200):
                mpimg.imsave(d / "samples" / f"step_{step:09d}.png", rng.random((80, 64)), cmap="gray")
    return root


def colour_pixels(png, rgb, tol=0.02) -> int:
    img = mpimg.imread(png)[..., :3]
    return int((np.abs(img - np.asarray(rgb[:3])).max(-1) < tol).sum())


def test_curves_and_grids_written(experiment, tmp_path):
    out = tmp_path / "out"
    run_cli(experiment, "--at-step", "600", "--out", out)
    for name in ("curve_train_loss.png", "curve_eval_fid.png", "curve_eval_is.png", "grids_step_600.png"):
        img = mpimg.imread(out / name)
        assert img.shape[0] > 400 and img.shape[1] > 400, name
    res = load(experiment)
    colours = group_colours(make_grouping(res))
    assert len(set(colours.values())) == 2
    for label, c in colours.items():
        line = colour_pixels(out / "curve_eval_fid.png", c)
        band = colour_pixels(out / "curve_eval_fid.png", 1 - 0.22 * (1 - np.asarray(c[:3])))  # alpha 0.22 on white
        assert line > 200, (label, line)  # the mean line in the group's colour
        assert band > 2000, (label, band)  # the CI band: a visible area


def test_curve_band_matches_hand_numbers():
    runs = [(np.array([0.0, 10.0]), np.array([1.0, 3.0])), (np.array([0.0, 5.0, 10.0]), np.array([3.0, 4.0, 5.0]))]
    band = curve_band(runs)
    assert band["step"].tolist() == [0.0, 5.0, 10.0]
    assert band["mean"].tolist() == [2.0, 3.0, 4.0]  # run 1 interpolated at step 5: 2.0
    assert band["hi"][0] - band["mean"][0] == pytest.approx(12.706204736174707 * np.sqrt(2) / np.sqrt(2))
    short = curve_band([(np.array([0.0, 5.0]), np.array([1.0, 2.0])), (np.array([0.0, 10.0]), np.array([1.0, 3.0]))])
    assert short["n"].tolist() == [2, 2, 1] and np.isnan(short["hi"][2])  # no extrapolation, no band at n=1


def test_fid_plot_split_by_protocol(tmp_path):
    root = tmp_path / "exp"
    write_run(root, "a", "laplace", "g", 0, history(40.0, 0))
    write_run(root, "b", "laplace", "g", 1, history(40.0, 1, fid_samples=500))
    res = load(root)
    paths = plot_curves(res, make_grouping(res), "eval/fid", tmp_path / "curve_eval_fid.png")
    assert [p.name for p in paths] == ["curve_eval_fid__P1.png", "curve_eval_fid__P2.png"]


def test_bands_stay_in_the_metric_range_and_need_three_seeds():
    """IS >= 1 and FID >= 0: three IS values 1.0, 1.1, 3.0 have mean 1.7, sd 1.1269, ci 4.303 * 1.1269 / √3 =
    2.80, so the interval's low end (-1.1) is cut at 1; two runs give no band (t = 12.7: noise)."""
    runs = [(np.array([0.0]), np.array([v])) for v in (1.0, 1.1, 3.0)]
    band = curve_band(runs)
    assert band["lo"][0] == pytest.approx(1.7 - 4.302652729749464 * 1.126942 / np.sqrt(3), abs=1e-4)  # -1.10
    lo, hi, where = band_limits(band, "eval/is")
    assert lo[0] == 1.0 and hi[0] == pytest.approx(band["hi"][0]) and where.tolist() == [True]
    lo, _, _ = band_limits(band, "eval/fid")
    assert lo[0] == 0.0
    loss_lo, _, _ = band_limits(band, "train/loss")  # unbounded
    assert loss_lo[0] == pytest.approx(band["lo"][0])
    assert band_limits(curve_band(runs[:2]), "eval/is")[2].tolist() == [False]


def test_eight_groups_differ_in_colour_style_and_marker(tmp_path):
    root = tmp_path / "exp"
    for i in range(8):
        write_run(root, f"r{i}", f"k{i}", f"g{i}", 0, history(10.0 * i, 0))
    res = load(root)
    styles = group_styles(make_grouping(res))
    keys = [(s["color"], s["ls"], s["marker"]) for s in styles.values()]
    assert len({k[0] for k in keys}) == 8 and len({k[1] for k in keys}) == 4 and len({k[2] for k in keys}) == 8
    (path,) = plot_curves(res, make_grouping(res), "eval/fid", tmp_path / "fid.png")
    img = mpimg.imread(path)
    assert img.shape[1] > img.shape[0] * 2.1  # the legend sits right of the axes (8:4.8 before), widening it
