"""`raydrift analyze export-wandb` and `--wandb`: W&B runs to run directories, then the same analysis.

There is no network here, so the W&B public API is replaced by ``FakeApi`` below: the one stand-in of the
analysis tests, shaped like ``wandb.Api()`` (``runs(path, filters=...)``; runs with ``id``, ``name``,
``group``, ``config``, ``scan_history()`` rows holding ``_step``/``_timestamp`` and the logged keys, and
``file(path).download(root=...)``). Everything after the API call (the files written, reading them back,
merging stages) is the real code path.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from fixtures.analysis_helpers import parse_tables, run_cli, table

import analysis.wandb_export as wandb_export
from analysis.load import load


class FakeFile:
    def __init__(self, path: str):
        self.path = path

    def download(self, root: str = ".", replace: bool = False, exist_ok: bool = False):
        target = Path(root) / self.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"\x89PNG fake")
        return target


class FakeRun:
    def __init__(self, run_id, name, config, rows, group=None):
        self.id, self.name, self.config, self._rows, self.group = run_id, name, config, rows, group
        self.url, self.state, self.tags = f"https://wandb.ai/me/proj/runs/{run_id}", "finished", ["mnist"]

    def scan_history(self, keys=None, page_size=1000, min_step=None, max_step=None):
        yield from self._rows

    def file(self, path):
        return FakeFile(path)


class FakeApi:
    def __init__(self, runs):
        self._runs, self.calls = runs, []

    def runs(self, path, filters=None, order="+created_at", per_page=50):
        self.calls.append((path, filters))
        wanted = None
        for clause in (filters or {}).get("$and", [filters or {}]):
            wanted = clause.get("name", {}).get("$in", wanted)
        return [r for r in self._runs if wanted is None or r.id in wanted]


def rows(stage_steps, loss, evals=(), start=0):
    """W&B history rows: train rows with our `step` key, eval rows logged separately (own _step)."""
    out, w = [], start
    for s, v in zip(stage_steps, loss):
        out.append({"_step": w, "_timestamp": 1.7e9 + w, "_runtime": w, "step": s, "train/loss": v})
        w += 1
    for s, fid in evals:
        media = {"_type": "image-file", "path": f"media/images/samples_{s}.png", "width": 64}
        out.append(
            {"_step": w, "_timestamp": 1.7e9 + w, "step": s, "fid": fid, "eval/is": float("nan"), "samples": media}
        )
        w += 1
    return out


@pytest.fixture
def api():
    cfg = {"kernel": "gaussian", "batch_n_pos": 64, "seed": 7, "_wandb": {"cli_version": "0.19"}}
    stage0 = FakeRun("aaa111", "bs64", cfg, rows([100, 200, 300], [5.0, 4.0, 3.0]))
    stage1 = FakeRun("bbb222", "bs64_resume", cfg, rows([250, 300, 400], [3.5, 3.4, 3.3], [(400, 42.0)]))
    other = FakeRun("ccc333", "bs32", cfg | {"batch_n_pos": 32}, rows([100], [6.0], [(100, 99.0)]), group="sweep")
    return FakeApi([stage0, stage1, other])


def test_export_layout_and_staged_merge(api, tmp_path):
    out = tmp_path / "export"
    stages = wandb_export.parse_stages(["bs64=aaa111,bbb222"])
    written = wandb_export.export_runs(
        api, "me/proj", out, stages=stages, rename={"fid": "eval/fid", "samples": "eval/grid"}, download_media=True
    )
    assert sorted(p.name for p in written) == ["bs32-ccc333", "bs64-aaa111", "bs64_resume-bbb222"]
    meta = json.loads((out / "bs64_resume-bbb222" / "meta.json").read_text())
    assert meta["logical_run"] == "bs64" and meta["stage"] == 1 and meta["seed"] == 7 and meta["source"] == "wandb"
    assert meta["wandb"]["id"] == "bbb222" and meta["experiment"] == "me/proj"
    assert "_wandb" not in json.loads((out / "bs64-aaa111" / "config.json").read_text())
    records = [json.loads(x) for x in (out / "bs64_resume-bbb222" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 400 and records[-1]["stage"] == 1 and records[-1]["eval/fid"] == 42.0
    assert records[-1]["eval/is"] is None  # NaN is written as null
    assert Path(records[-1]["eval/grid"]).is_file()  # the image was downloaded into the run dir

    res = load(out)
    assert sorted(res.runs["run"].to_list()) == ["bs32", "bs64"]
    loss = res.tidy.filter((pl.col("run") == "bs64") & (pl.col("metric") == "train/loss"))
    merged = [(0, 100, 5.0), (0, 200, 4.0), (1, 250, 3.5), (1, 300, 3.4), (1, 400, 3.3)]  # stage 0's 300 is gone
    assert loss.select("stage", "step", "value").rows() == merged
    fid = res.tidy.filter(pl.col("metric") == "eval/fid").sort("run")
    assert fid.select("run", "step", "value").rows() == [("bs32", 100, 99.0), ("bs64", 400, 42.0)]
    assert res.tidy.filter(pl.col("metric") == "eval/is").height == 0  # never a zero for a NaN


def test_export_filters_and_missing_ids(api, tmp_path):
    filters = wandb_export.parse_filters(["config.kernel=gaussian", "config.batch_n_pos=64"])
    assert filters == {"config.kernel": "gaussian", "config.batch_n_pos": 64}
    wandb_export.export_runs(api, "me/proj", tmp_path / "a", filters=filters, run_ids=["ccc333"])
    assert api.calls[-1] == ("me/proj", {"$and": [filters, {"name": {"$in": ["ccc333"]}}]})
    with pytest.raises(LookupError, match="zzz999"):
        wandb_export.export_runs(api, "me/proj", tmp_path / "b", run_ids=["zzz999"])
    with pytest.raises(ValueError, match="LOGICAL_NAME=RUN_ID1"):
        wandb_export.parse_stages(["bs64"])


def test_cli_export_and_live_wandb(api, tmp_path, monkeypatch):
    monkeypatch.setattr(wandb_export, "wandb_api", lambda: api)
    out = run_cli("export-wandb", "me/proj", "--out", tmp_path / "exp", "--stage", "bs64=aaa111,bbb222",
                  "--rename", "fid=eval/fid")  # fmt: skip
    assert "exported 3 runs" in out
    report = run_cli(tmp_path / "exp", "--by", "batch_n_pos", "--at-step", "400")
    row = table(parse_tables(report), "Summary per group")["batch_n_pos=64 (1 seed, preliminary)"]
    assert (row["final step"], row["min train/loss"], row["last FID"]) == (
        "400",
        "3.3",
        "42 †",
    )  # stage 0: no FID
    live = run_cli("--wandb", "me/proj", "--stage", "bs64=aaa111,bbb222", "--rename", "fid=eval/fid",
                   "--by", "batch_n_pos", "--at-step", "400", "--out", tmp_path / "live", "--no-plots")  # fmt: skip
    assert parse_tables(live) == parse_tables(report)
    assert (tmp_path / "live" / "wandb-export" / "bs64-aaa111" / "metrics.jsonl").is_file()


def test_no_heavy_imports():
    """The analysis package imports neither wandb, ray nor torch (and the whole CLI neither polars nor torch)."""
    code = (
        "import sys, raydrift.cli; light = not {'polars', 'torch', 'ray'} & set(sys.modules);"
        "import analysis.report, analysis.plots, analysis.wandb_export;"
        "print(light, [m for m in ('wandb', 'ray', 'torch') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "[]"]


def test_t_quantiles():
    from analysis.stats import mean_ci, paired_ci

    est = mean_ci([1.0, 2.0, 4.0])
    sd = math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)
    assert est.ci == pytest.approx(4.302652729749464 * sd / math.sqrt(3))
    assert mean_ci([5.0]).ci is None and mean_ci([]).n == 0
    assert paired_ci([3.0, 5.0], [1.0, 2.0]).mean == pytest.approx(2.5)
