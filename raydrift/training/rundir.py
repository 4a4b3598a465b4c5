"""The run-directory format: what a run writes and every reader (``raydrift analyze`` included) reads.

A run directory holds ``.raydrift`` (:data:`MARKER_FILE`: raydrift made it, so ``--overwrite`` may
delete it), ``config.json`` (the resolved config), ``meta.json`` (:func:`run_meta`: experiment,
trial id, group, seed, overrides), ``metrics.jsonl``, ``samples/step_*.png``, and ``evaluations.jsonl``
(``raydrift evaluate``'s results under other protocols).

``metrics.jsonl`` is the metric history: one JSON object per report, appended as it happens. Each record
holds ``step``, ``images_seen``, ``stage`` (0 for the first process, +1 per resume) and the metric keys
(``train/...``, ``eval/...``, ``perf/...``) with eval provenance (``eval/fid_net``, ``eval/fid_samples``,
``eval/fid_ref``). A resumed run appends to the same file; readers merge by step with the later stage
winning (``analysis`` does).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"
META_FILE = "meta.json"
EVALUATIONS_FILE = "evaluations.jsonl"  # `raydrift evaluate` results (other protocols than the run's own)
MARKER_FILE = ".raydrift"  # written into every run and study directory raydrift creates; --overwrite needs it


def marker(kind: str) -> dict[str, Any]:
    """The content of :data:`MARKER_FILE` for a ``kind`` (``run`` or ``study``) directory."""
    return {"created_by": "raydrift", "kind": kind}


def append_record(run_dir: str | os.PathLike, record: dict[str, Any], name: str = METRICS_FILE) -> None:
    """Append ``record`` (plus wall-clock ``time``) to ``run_dir/<name>``; NaN/inf become null."""
    path = Path(run_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
    with open(path, "a") as f:
        f.write(json.dumps({"time": time.time()} | clean) + "\n")


def read_history(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of ``run_dir/metrics.jsonl`` in file order (a truncated last line is ignored)."""
    return read_jsonl(Path(run_dir) / METRICS_FILE)


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, in order; a line that does not parse is skipped."""
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
    return out


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> None:
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)


def run_meta(
    *,
    run_name: str,
    preset: str,
    seed: int,
    overrides: dict[str, Any],
    experiment: str = "",
    trial_id: str = "",
    group_id: str = "",
    group_label: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """The ``meta.json`` of a run: a standalone run leaves the experiment, trial and group fields empty."""
    return {
        "experiment": experiment,
        "trial_id": trial_id,
        "run_name": run_name,
        "preset": preset,
        "seed": seed,
        "overrides": overrides,
        "group_id": group_id,
        "group_label": group_label,
    } | extra


class PlainReporter:
    """Plain-process reporter: metrics in ``run_dir/metrics.jsonl``, checkpoints in ``run_dir/checkpoints``"""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def checkpoint_root(self) -> Path:
        return self.run_dir / "checkpoints"

    def report(self, metrics: dict[str, Any], checkpoint: Path | None = None) -> None:
        append_record(self.run_dir, metrics)
