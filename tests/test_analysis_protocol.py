"""FIDs of different protocols (feature network, sample count, reference split) never share a column."""

from __future__ import annotations

import pytest
from fixtures.analysis_helpers import parse_tables, run_cli, table, write_run

from analysis.load import load
from analysis.protocol import protocol_ids

LENET = {"eval/fid_net": "lenet:digits:e30:1a2b3c4d", "eval/fid_samples": 1000, "eval/fid_ref": "digits:train"}
LENET["eval/fid_ref_n"] = 1797


def evals(fids, **prov):
    p = LENET | {f"eval/{k}": v for k, v in prov.items()}
    return [
        {"step": 100 * (i + 1), "train/loss": 5.0 - i, "eval/fid": f, "eval/is": 2.0} | p for i, f in enumerate(fids)
    ]


@pytest.fixture
def experiment(tmp_path):
    root = tmp_path / "exp"
    write_run(root, "r_seed0", "gaussian", "g1", 0, evals([90.0, 80.0]))
    write_run(root, "r_seed1", "gaussian", "g1", 1, evals([70.0, 60.0], fid_samples=500))
    write_run(root, "r_seed2", "gaussian", "g1", 2, evals([40.0, 30.0], fid_net="inception-tf:pool3"))
    return root


def test_fid_columns_split_by_protocol(experiment):
    out = run_cli(experiment)
    row = table(parse_tables(out), "Summary per group")["kernel=gaussian"]
    assert row["n"] == "3"
    assert row["min train/loss"] == "4"  # not a protocol metric: one column, all three runs (all equal)
    assert row["min FID [P1]"] == "80 (n=1)"
    assert row["min FID [P2]"] == "60 (n=1)"
    assert row["min FID [P3]"] == "30 (n=1)"
    assert "min FID" not in row and "last IS [P3]" in row


def test_protocol_message_names_runs_and_difference(experiment):
    out = run_cli(experiment)
    assert "FID/IS protocols differ between runs" in out
    assert (
        "P1 = fid_net=lenet:digits:e30:1a2b3c4d, fid_samples=1000, fid_ref=digits:train, fid_ref_n=1797: runs r_seed0."
        in out
    )
    assert (
        "P2 = fid_net=lenet:digits:e30:1a2b3c4d, fid_samples=500, fid_ref=digits:train, fid_ref_n=1797: runs r_seed1."
        in out
    )
    lenet = "lenet:digits:e30:1a2b3c4d"
    assert (
        f"They differ in fid_net (P1: {lenet}, P2: {lenet}, P3: inception-tf:pool3); "
        "fid_samples (P1: 1000, P2: 500, P3: 1000)."
    ) in out


def test_protocol_change_inside_a_run(tmp_path):
    root = tmp_path / "exp"
    records = evals([90.0]) + [r | {"step": 200} for r in evals([85.0], fid_ref="digits:test")]
    write_run(root, "r0", "laplace", "g", 0, records)
    write_run(root, "r1", "laplace", "g", 1, evals([95.0, 88.0]))
    out = run_cli(root, "--at-step", "200")
    assert "Run r0 changes protocol during training: P1 from step 100, P2 from step 200." in out
    row = table(parse_tables(out), "Matched step 200")["kernel=laplace"]
    # r0's last P1 eval is at step 100 (it reached step 200, logging P2 there): (90, 88), mean 89 with n = 2
    # (no interval stated); P2 holds only r0's step-200 eval
    assert row["FID @200 [P1]"] == "89 ⚠"
    assert row["FID @200 [P2]"] == "85 (n=1)"
    assert "FID @200 [P1], IS @200 [P1]: `kernel=laplace` seed 0 logged nothing at step 200" in out


def test_one_protocol_is_stated(tmp_path):
    root = tmp_path / "exp"
    write_run(root, "r0", "laplace", "g", 0, evals([90.0]))
    write_run(root, "r1", "laplace", "g", 1, evals([80.0]))
    assert protocol_ids(load(root)) == {}
    out = run_cli(root)
    assert "FID/IS protocol (all runs): fid_net=lenet:digits:e30:1a2b3c4d, fid_samples=1000" in out
    assert "min FID [" not in out


def test_no_verdict_across_protocols(experiment):
    out = run_cli(experiment)
    assert "**No verdict: FID protocols differ between runs (see the protocol notes)" in out
    assert "| — | kernel=gaussian |" in out and "not ranked: protocols differ" in out
