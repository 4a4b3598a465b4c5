"""`raydrift analyze` on one run, on unrelated standalone runs and on a study mixed with a standalone run:
a table every time, and runs whose configs differ are never pooled without saying so."""

import json
from pathlib import Path

from fixtures.analysis_helpers import parse_tables, run_cli, table


def standalone_run(root: Path, name: str, depth: int, n_pos: int, steps: int, fids: list[float]) -> Path:
    """A `raydrift train` run directory: meta.json without overrides or group, one eval per 200 steps."""
    d = root / name
    d.mkdir(parents=True)
    records = [{"step": 200 * i, "images_seen": 200 * i * 640, "stage": 0, "eval/fid": f} for i, f in enumerate(fids)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    config = {"preset": "digits", "model": {"depth": depth}, "drift": {"kernel": "laplace", "n_pos": n_pos}}
    (d / "config.json").write_text(json.dumps(config | {"train": {"seed": 0, "steps": steps}}))
    meta = {"experiment": "", "trial_id": "", "run_name": name, "group_id": "", "group_label": "", "seed": 0}
    (d / "meta.json").write_text(json.dumps(meta | {"overrides": {}, "preset": "digits"}))
    return d


def test_one_run_gives_a_table(tmp_path):
    run = standalone_run(tmp_path, "digits", 3, 64, 400, [90.0, 20.0, 5.0])
    summary = table(parse_tables(run_cli(run)), "Summary per group")
    ((label, row),) = summary.items()
    assert label.startswith("all runs") and row["n"] == "1"


def test_unrelated_runs_are_split_by_the_keys_that_differ(tmp_path):
    standalone_run(tmp_path, "deep", 3, 64, 400, [90.0, 20.0, 5.0])
    standalone_run(tmp_path, "shallow", 2, 32, 400, [95.0, 30.0, 9.0])
    out = run_cli(tmp_path)
    summary = table(parse_tables(out), "Summary per group")
    assert {label.split(" (")[0] for label in summary} == {"depth=2, n_pos=32", "depth=3, n_pos=64"}
    assert all(row["n"] == "1" for row in summary.values())
    assert "n counts seeds" in out


def test_a_standalone_run_is_not_pooled_into_a_study_group(tmp_path):
    from fixtures.analysis_helpers import write_run

    study = tmp_path / "study"
    for seed in (0, 1):
        write_run(study, f"t{seed}", "laplace", "g1", seed, [{"step": 400, "images_seen": 1, "eval/fid": 10.0 + seed}])
    standalone_run(tmp_path / "runs", "digits", 3, 64, 1000, [90.0, 20.0, 5.0])
    summary = table(parse_tables(run_cli(study, tmp_path / "runs")), "Summary per group")
    assert len(summary) == 2  # the study's laplace group and the standalone run, each on its own row
    assert sorted(row["n"] for row in summary.values()) == ["1", "2"]


def test_coarse_grouping_says_n_counts_runs(tmp_path):
    standalone_run(tmp_path, "deep", 3, 64, 400, [90.0, 20.0, 5.0])
    standalone_run(tmp_path, "shallow", 2, 32, 400, [95.0, 30.0, 9.0])
    out = run_cli(tmp_path, "--by", "kernel")
    assert "over runs" in out and "n counts runs" in out and "over seeds" not in out


def test_plain_runs_seeded_with_set_are_seeds_of_one_configuration(tmp_path):
    """`raydrift train --set drift.kernel=K --set train.seed=S` records the seed among its overrides: the
    seed is never a grouping axis, so each kernel is one row over its seeds."""
    from analysis.grouping import make_grouping
    from analysis.load import load

    root = tmp_path / "runs"
    for kernel, seeds in (("laplace", (0, 1, 2)), ("gaussian", (0, 1, 2))):
        for seed in seeds:
            d = root / f"{kernel}-s{seed}"
            d.mkdir(parents=True)
            recs = [{"step": 100, "images_seen": 3200, "eval/fid": 10.0 + seed + (kernel == "laplace")}]
            (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
            cfg = {"preset": "digits", "drift": {"kernel": kernel}, "train": {"seed": seed, "steps": 100}}
            (d / "config.json").write_text(json.dumps(cfg | {"output_dir": str(root), "name": d.name}))
            overrides = {"drift.kernel": kernel, "train.seed": str(seed), "output_dir": str(root)}
            meta = {"experiment": "", "run_name": d.name, "seed": seed, "overrides": overrides}
            (d / "meta.json").write_text(json.dumps(meta | {"preset": "digits"}))
    grouping = make_grouping(load([root]))
    assert grouping.by == ["drift.kernel"] and grouping.n_counts == "seeds"
    assert sorted(grouping.labels) == ["kernel=gaussian", "kernel=laplace"]
    assert all(grouping.seeds(label) == 3 for label in grouping.labels)
    verdict = table(parse_tables(run_cli(root)), "Matched step 100")
    assert set(verdict) == {"kernel=gaussian", "kernel=laplace"}
