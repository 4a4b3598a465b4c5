"""The experiment report's tables, reproduced by `raydrift analyze` from a W&B-style history export.

The export (tests/fixtures/analysis_report_runs.py) holds the report's MNIST runs and its two-stage CIFAR
runs, with histories whose summary statistics are the report's numbers. The report's tables are pasted
below verbatim; every output table must have the same columns (plus n), the same rows (one seed, so each
labelled preliminary) and the same cells. The report prints one-seed values with 4 decimals: `--digits 4`
(the default is 4 significant digits).
"""

from __future__ import annotations

import pytest
from fixtures.analysis_helpers import parse_tables, run_cli, table
from fixtures.analysis_report_runs import write_cifar, write_mnist

# From ../shared/seed/experiment-report.md ("Kernel choices": the L2 and Gaussian run-end summaries, and the
# matched-step snapshot; "Batch size"; "CIFAR batch-size comparison").
REPORT_KERNEL = """
| setting | final step | min train/loss | last train/loss | min FID | last FID | max IS | last IS |
|---|---:|---:|---:|---:|---:|---:|---:|
| bs32 + l2 | 23400 | 3.9569 | 6.4778 | 54.8681 | 56.2028 | 2.7186 | 2.3179 |
| bs32 + gaussian | 18300 | 3.9483 | 6.6025 | 40.6930 | 42.1633 | 2.7617 | 2.2568 |
| bs64 + l2 | 23400 | 3.9577 | 6.1227 | 47.2951 | 47.9010 | 2.6380 | 2.2178 |
| bs64 + gaussian | 16500 | 3.9491 | 6.4253 | 38.3410 | 39.2414 | 2.8034 | 2.2595 |
"""
REPORT_MATCHED = """
| setting | train/loss @16000 | FID @16000 | IS @16000 |
|---|---:|---:|---:|
| bs32 + l2 | 6.5009 | 62.2722 | 2.2427 |
| bs32 + gaussian | 6.6445 | 45.2923 | 2.2916 |
| bs64 + l2 | 6.2322 | 53.8721 | 2.2191 |
| bs64 + gaussian | 6.4137 | 39.5218 | 2.2613 |
"""
REPORT_BATCH = """
| setting | final step | min train/loss | last train/loss | min FID | last FID | max IS | last IS |
|---|---:|---:|---:|---:|---:|---:|---:|
| bs32 | 23400 | 3.9569 | 6.4778 | 54.8681 | 56.2028 | 2.7186 | 2.3179 |
| bs64 | 23400 | 3.9577 | 6.1227 | 47.2951 | 47.9010 | 2.6380 | 2.2178 |
| bs128 | 23400 | 3.9584 | 5.9902 | 45.4389 | 47.6765 | 2.6674 | 2.2047 |
"""
REPORT_CIFAR = """
| setting | final step | min train/loss | last train/loss | min FID | last FID | max IS | last IS |
|---|---:|---:|---:|---:|---:|---:|---:|
| bs32 (merged) | 2937 | 5.8557 | 6.3566 | 72.3870 | 72.3870 | 7.0275 | 6.9267 |
| bs64 (merged) | 3029 | 5.6593 | 6.1099 | 69.9139 | 70.1856 | 7.3124 | 7.2267 |
"""


def rows(markdown: str) -> tuple[list[str], list[list[str]]]:
    lines = [line for line in markdown.strip().splitlines() if not line.startswith("|---")]
    split = [[p.strip() for p in line.strip("|").split("|")] for line in lines]
    return split[0], split[1:]


def assert_same_table(output: dict[str, dict[str, str]], report: str, marks: dict[str, str] | None = None):
    """Same rows in the same order, same columns (output adds n), same cells (output may add marks)."""
    headers, report_rows = rows(report)
    assert list(output) == [f"{r[0]} (1 seed, preliminary)" for r in report_rows]
    for r in report_rows:
        out = output[f"{r[0]} (1 seed, preliminary)"]
        assert list(out) == ["n", *headers[1:]]
        assert out["n"] == "1"
        for header, value in zip(headers[1:], r[1:]):
            assert out[header] == value + (marks or {}).get((r[0], header), ""), (r[0], header)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    root = tmp_path_factory.mktemp("wandb_export")
    write_mnist(root / "mnist")
    write_cifar(root / "cifar")
    return root


def test_report_kernel_table_and_matched_step(export):
    out = run_cli(
        export / "mnist",
        *("--where", "batch_n_pos=32|64", "--by", "batch_n_pos,kernel"),
        *("--label", "bs{batch_n_pos} + {kernel}", "--at-step", "16000", "--digits", "4"),
    )
    tables = parse_tables(out)
    assert_same_table(table(tables, "Summary per group"), REPORT_KERNEL)
    assert_same_table(table(tables, "Matched step 16000"), REPORT_MATCHED)
    assert "protocol: not recorded" in out
    # The report's separate L2 and Gaussian tables are the same rows filtered by kernel.
    out = run_cli(export / "mnist", "--where", "kernel=l2", "--where", "batch_n_pos=32|64",
                  "--by", "batch_n_pos,kernel", "--label", "bs{batch_n_pos} + {kernel}")  # fmt: skip
    assert list(table(parse_tables(out), "Summary per group")) == [
        "bs32 + l2 (1 seed, preliminary)",
        "bs64 + l2 (1 seed, preliminary)",
    ]


def test_report_batch_table(export):
    out = run_cli(
        export / "mnist", "--where", "kernel=l2", "--by", "batch_n_pos", "--label", "bs{batch_n_pos}", "--digits", "4"
    )
    assert_same_table(table(parse_tables(out), "Summary per group"), REPORT_BATCH)


def test_report_cifar_two_stage_merge(export):
    """Stage 2 overrides the steps it replays; bs64's stage 1 logged no FID/IS, which the table marks."""
    out = run_cli(export / "cifar", "--by", "batch_n_pos", "--label", "bs{batch_n_pos} (merged)", "--digits", "4")
    marks = {("bs64 (merged)", h): " †" for h in ("min FID", "last FID", "max IS", "last IS")}
    assert_same_table(table(parse_tables(out), "Summary per group"), REPORT_CIFAR, marks)
    assert "† run cifar_bs64, stage 0 (steps 10-1700): no eval/fid, eval/is logged" in out


def test_gaussian_vs_l2_across_batch_sizes(export):
    """The user's question: Gaussian vs L2 at 16k steps, pairing runs on seed and batch size."""
    out = run_cli(export / "mnist", "--where", "batch_n_pos=32|64", "--by", "kernel", "--at-step", "16000",
                  "--baseline", "kernel=l2")  # fmt: skip
    paired = table(parse_tables(out), "Paired difference vs `kernel=l2` at step 16000")
    row = paired["kernel=gaussian (1 seed, preliminary)"]
    # (45.2923 - 62.2722, 39.5218 - 53.8721) = (-16.9799, -14.3503): mean -15.6651, ci 12.706 * 1.859 / √2
    # = 16.7 (tens), widened to 3 significant digits; n = 2 states no interval
    assert row["n"] == "2"
    assert row["FID @16000"] == "-15.7 ⚠"
    assert "Paired on: seed, batch_n_pos, batch_n_neg" in out
    assert "Row `kernel=l2` pools runs that differ in batch_n_pos, batch_n_neg" in out
