"""Loading run directories into one tidy polars frame.

A *run directory* holds ``metrics.jsonl``, ``config.json`` and ``meta.json`` (written by ``raydrift
train``/``tune``, see ``raydrift/history.py``, or by ``raydrift analyze export-wandb``). A Tune trial
directory that was synced without them (e.g. from S3) holds Tune's ``result.json`` (one JSON line per
report, our metric keys at top level) and ``params.json`` (the trial's Tune config, where the study runner
puts ``group_id``, ``group_label``, ``seed`` and the overrides). Every given path is walked for both.

Directories whose ``meta.json`` names the same ``logical_run`` (stages of one run exported separately from
W&B) form one logical run; a record's stage is its ``stage`` key, else the directory's ``meta.json``
``stage``. Stages are merged by step in ``analysis.merge``.

Frames (``Results``):

- ``tidy``: one row per (run, step, metric) after merging stages: ``experiment, run, trial_id, group_id,
  group_label, seed, stage, step, images_seen, metric, value`` plus eval provenance (``fid_net,
  fid_samples, fid_ref, fid_ref_n``, ``protocol``: one string of those four for FID/IS metrics, null for
  other metrics or when a run did not record it; ``grid``: the sample-grid PNG of that eval) plus every
  config column that differs between the loaded runs or that a study swept. Missing values are absent
  rows, never zeros.
- ``runs``: one row per logical run with every config column (dotted keys, e.g. ``drift.kernel``; a config
  key that clashes with a base column is prefixed ``config.``), its ``stages``, ``final_step`` (last step
  of the merged history), ``paths``, ``planned_steps`` (the config's ``train.steps``), ``failure`` (a failure
  record's reason), ``wandb_state`` and how it ended: ``status`` and ``status_note`` (``analysis.status``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from raydrift.training.rundir import CONFIG_FILE, META_FILE, METRICS_FILE, read_history, read_jsonl

from .merge import merge_stages
from .status import with_status

TUNE_RESULT_FILE, TUNE_PARAMS_FILE = "result.json", "params.json"
# Provenance keys of an eval record -> tidy column names.
PROVENANCE = {
    "eval/fid_net": "fid_net",
    "eval/fid_samples": "fid_samples",
    "eval/fid_ref": "fid_ref",
    "eval/fid_ref_n": "fid_ref_n",
}
GRID_KEY = "eval/grid"
RECORD_KEYS = {"time", "step", "images_seen", "stage"}
RUN_COLUMNS = ["experiment", "run", "trial_id", "group_id", "group_label", "seed"]
TIDY_BASE = [*RUN_COLUMNS, "stage", "step", "images_seen", "metric", "value", "protocol", *PROVENANCE.values(), "grid"]
# Params keys the study runner adds beside the overrides (not config keys).
_PARAMS_RESERVED = {"group_id", "group_label", "seed", "preset", "experiment", "run_name", "trial_id"}
_SKIP_DIRS = {"samples", "checkpoints", "wandb", "__pycache__"}


PROTOCOL_PREFIXES = ("eval/fid", "eval/is")  # metrics whose value depends on the FID/IS protocol


def is_protocol_metric(metric: str) -> bool:
    """FID- and IS-like metrics depend on the feature network, sample count and reference split."""
    return metric.startswith(PROTOCOL_PREFIXES)


@dataclass
class RunDir:
    """One directory's meta, config (nested as written) and records (in file order)."""

    path: Path
    kind: str  # "run" (metrics.jsonl) or "tune" (result.json + params.json only)
    meta: dict[str, Any]
    config: dict[str, Any]
    records: list[dict[str, Any]]


@dataclass
class Results:
    """Loaded runs: ``tidy`` (long, merged), ``runs`` (one row per logical run), ``swept`` config keys."""

    tidy: pl.DataFrame
    runs: pl.DataFrame
    steps: pl.DataFrame  # one row per (run, step) of the merged histories: run, stage, step, images_seen
    swept: list[str] = field(default_factory=list)

    @property
    def config_columns(self) -> list[str]:
        return config_columns(self.runs)

    def select_runs(self, keep: pl.Series | pl.Expr) -> Results:
        """Results restricted to the runs where ``keep`` (a boolean over ``runs``) holds."""
        runs = self.runs.filter(keep)
        selected = pl.col("run").is_in(runs["run"].implode())
        return Results(self.tidy.filter(selected), runs, self.steps.filter(selected), self.swept)


_RUN_FIELDS = {"experiment", "run", "trial_id", "run_name", "group_id", "group_label", "seed", "source", "paths"}
_RUN_FIELDS |= {"stages", "final_step", "planned_steps", "failure", "wandb_state", "status", "status_note"}


def config_columns(runs: pl.DataFrame) -> list[str]:
    """The config columns of a ``runs`` frame (everything but the run's own fields)."""
    return [c for c in runs.columns if c not in _RUN_FIELDS]


def is_run_dir(path: Path) -> bool:
    if (path / METRICS_FILE).is_file():
        return True
    return (path / TUNE_RESULT_FILE).is_file() and (path / TUNE_PARAMS_FILE).is_file()


def find_run_dirs(root: str | os.PathLike) -> list[Path]:
    """Run directories at or under ``root`` in sorted order (run directories are not searched further)."""
    out = []
    for dirpath, dirnames, _ in os.walk(root):
        path = Path(dirpath)
        if is_run_dir(path):
            out.append(path)
            dirnames.clear()
            continue
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("checkpoint_"))
    return sorted(out)


def read_run_dir(path: str | os.PathLike) -> RunDir:
    """One run directory: ours (metrics.jsonl, meta.json, config.json) or a Tune trial's files."""
    path = Path(path)
    if (path / METRICS_FILE).is_file():
        meta = _read_json(path / META_FILE)
        config = _read_json(path / CONFIG_FILE)
        return RunDir(path, "run", meta, config, read_history(path))
    return _read_tune_trial(path)


def _read_tune_trial(path: Path) -> RunDir:
    """A trial directory with only Tune's files: metric keys from each result line; the trial's Tune config
    (params.json) gives the overrides and the seed (``seed`` or ``train.seed``), plus ``group_id`` and
    ``group_label`` where the study runner put them (else derived from the overrides)."""
    params = _read_json(path / TUNE_PARAMS_FILE)
    lines = read_jsonl(path / TUNE_RESULT_FILE)
    records = []
    for line in lines:
        rec = {k: v for k, v in line.items() if k in RECORD_KEYS or "/" in k}
        rec.setdefault("step", line.get("training_iteration"))
        records.append(rec)
    flat = flatten_config(params)
    seed = next((flat[k] for k in ("seed", "train.seed") if flat.get(k) is not None), None)
    if isinstance(params.get("overrides"), dict):
        overrides = flatten_config(params["overrides"])
    else:
        overrides = {k: v for k, v in flat.items() if k not in _PARAMS_RESERVED and k != "train.seed"}
    label = ",".join(f"{k.rsplit('.', 1)[-1]}={format_value(v)}" for k, v in sorted(overrides.items()))
    digest = hashlib.sha1(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:8]
    meta = {
        "experiment": params.get("experiment", ""),
        "trial_id": next((line["trial_id"] for line in lines if line.get("trial_id")), path.name),
        "run_name": params.get("run_name", path.name),
        "group_id": params.get("group_id") or digest,
        "group_label": params.get("group_label") or label,
        "seed": seed,
        "overrides": overrides,
        "preset": params.get("preset", ""),
    }
    config = dict(overrides) | {"preset": meta["preset"]}
    if seed is not None:
        config["train.seed"] = seed
    return RunDir(path, "tune", meta, config, records)


def load(paths: Sequence[str | os.PathLike] | str | os.PathLike) -> Results:
    """Walk ``paths`` for run directories, merge stages, return the tidy and per-run frames."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    logical: dict[tuple[str, str], list[RunDir]] = {}
    for root in map(Path, paths):
        if not root.is_dir():
            raise FileNotFoundError(f"no such experiment directory: {root}")
        dirs = find_run_dirs(root)
        if not dirs:
            raise FileNotFoundError(f"no run directories (metrics.jsonl or result.json) under {root}")
        for path in dirs:
            rd = read_run_dir(path)
            experiment = rd.meta.get("experiment") or (root.name if path != root else root.parent.name)
            rd.meta["experiment"] = experiment
            key = rd.meta.get("logical_run") or str(path.resolve())
            logical.setdefault((experiment, key), []).append(rd)
    return _build(list(logical.values()))


def _build(groups: list[list[RunDir]]) -> Results:
    run_rows, step_rows, metric_rows = [], {k: [] for k in ("run", "stage", "step", "seq", "images_seen")}, []
    names: set[str] = set()
    swept: dict[str, None] = {}
    for dirs in groups:
        dirs.sort(key=lambda d: int(d.meta.get("stage", 0) or 0))
        meta = dirs[0].meta
        run = _unique_name(meta.get("logical_run") or meta.get("run_name") or dirs[0].path.name, names)
        swept.update(dict.fromkeys(meta.get("overrides") or {}))
        seq, failure = 0, None
        for rd in dirs:
            dir_stage = int(rd.meta.get("stage", 0) or 0)
            for rec in rd.records:
                step = rec.get("step")
                failure = rec.get("failure") or failure
                if step is None:
                    continue
                seq += 1
                stage = int(rec.get("stage", dir_stage) or 0)
                for k, v in (("run", run), ("stage", stage), ("step", int(step)), ("seq", seq)):
                    step_rows[k].append(v)
                step_rows["images_seen"].append(rec.get("images_seen"))
                metric_rows.extend(_metric_rows(rec, rd.path, run, stage, int(step), seq))
        run_rows.append(_run_row(run, dirs) | {"failure": failure})
    steps = pl.DataFrame(step_rows, schema=_STEP_SCHEMA)
    long = pl.DataFrame(metric_rows, schema=_LONG_SCHEMA, orient="row")
    steps, long = merge_stages(steps, long)
    runs = with_status(_runs_frame(run_rows, steps))
    tidy = _tidy_frame(long, runs, list(swept))
    return Results(tidy, runs, steps, swept=[k for k in swept if k in runs.columns])


_STEP_SCHEMA = {"run": pl.String, "stage": pl.Int64, "step": pl.Int64, "seq": pl.Int64}
_STEP_SCHEMA["images_seen"] = pl.Int64
_LONG_SCHEMA = {**_STEP_SCHEMA, "metric": pl.String, "value": pl.Float64, "fid_net": pl.String}
_LONG_SCHEMA |= {"fid_samples": pl.Int64, "fid_ref": pl.String, "fid_ref_n": pl.Int64, "grid": pl.String}


def _metric_rows(rec: dict, run_dir: Path, run: str, stage: int, step: int, seq: int) -> Iterable[tuple]:
    prov = [rec.get(k) for k in PROVENANCE]
    grid = _resolve_grid(rec.get(GRID_KEY), run_dir)
    images = rec.get("images_seen")
    for k, v in rec.items():
        if k in RECORD_KEYS or k in PROVENANCE or k == GRID_KEY or k.startswith("_"):
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            continue  # null/NaN (missing), strings, media: not a metric value
        if k.startswith("eval/"):  # provenance and sample grid belong to the eval record's rows
            yield (run, stage, step, seq, images, k, float(v), *prov, grid)
        else:
            yield (run, stage, step, seq, images, k, float(v), None, None, None, None, None)


def _resolve_grid(path: Any, run_dir: Path) -> str | None:
    """The grid PNG as written, or found again under the run directory when the tree was moved."""
    if not isinstance(path, str) or not path:
        return None
    p = Path(path)
    for candidate in (run_dir / "samples" / p.name, p, run_dir / p):  # the run dir's own copy first
        if candidate.is_file():
            return str(candidate)
    return path


def _run_row(run: str, dirs: list[RunDir]) -> dict[str, Any]:
    meta, config = dirs[0].meta, flatten_config(dirs[0].config)
    seed = meta.get("seed")
    if seed is None:  # no meta.json (or none recorded): the config's seed
        seed = next((config[k] for k in ("train.seed", "seed") if isinstance(config.get(k), int)), None)
    return {
        "experiment": meta.get("experiment", ""),
        "run": run,
        "trial_id": str(meta.get("trial_id") or dirs[0].path.name),
        "run_name": str(meta.get("run_name") or dirs[0].path.name),
        "group_id": str(meta.get("group_id") or ""),
        "group_label": str(meta.get("group_label") or ""),
        "seed": seed,
        "source": "tune" if dirs[0].kind == "tune" else meta.get("source", "raydrift"),
        "paths": ";".join(str(d.path) for d in dirs),
        "planned_steps": planned if isinstance(planned := config.get("train.steps"), int) else None,
        "wandb_state": (meta.get("wandb") or {}).get("state") if isinstance(meta.get("wandb"), dict) else None,
        "config": config,
    }


def _runs_frame(rows: list[dict[str, Any]], steps: pl.DataFrame) -> pl.DataFrame:
    base = ["experiment", "run", "trial_id", "run_name", "group_id", "group_label", "source", "paths"]
    data: dict[str, list] = {k: [r[k] for r in rows] for k in base}
    for k, dtype in (("planned_steps", pl.Int64), ("failure", pl.String), ("wandb_state", pl.String)):
        data[k] = pl.Series([r[k] for r in rows], dtype=dtype)
    data["seed"] = [None if r["seed"] is None else int(r["seed"]) for r in rows]
    reserved = set(base) | {"seed", "stages", "final_step", "planned_steps", "failure", "wandb_state"}
    reserved |= {"status", "status_note"}
    keys = list(dict.fromkeys(k for r in rows for k in r["config"]))
    for k in keys:
        name = f"config.{k}" if k in reserved else k
        data[name] = _config_column([r["config"].get(k) for r in rows])
    frame = pl.DataFrame(data, strict=False)
    per_run = steps.group_by("run").agg(
        pl.col("stage").unique().sort().alias("stages"), pl.col("step").max().alias("final_step")
    )
    return frame.join(per_run, on="run", how="left", maintain_order="left")


def _config_column(values: list[Any]) -> pl.Series:
    """One dtype per config key: numbers, booleans or (for anything mixed or list-valued) strings."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pl.Series(values, dtype=pl.Boolean)
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        if all(isinstance(v, int) for v in present):
            return pl.Series(values, dtype=pl.Int64)
        return pl.Series([None if v is None else float(v) for v in values], dtype=pl.Float64)
    return pl.Series([None if v is None else format_value(v) for v in values], dtype=pl.String)


def format_value(v: Any) -> str:
    """Config value as shown in labels: lists as ``(0.02,0.05,0.2)``, floats by repr."""
    if isinstance(v, (list, tuple)):
        return "(" + ",".join(format_value(x) for x in v) + ")"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _tidy_frame(long: pl.DataFrame, runs: pl.DataFrame, swept: list[str]) -> pl.DataFrame:
    varying = [c for c in config_columns(runs) if c in swept or runs[c].cast(pl.String).n_unique() > 1]
    protocol = pl.concat_str(
        [pl.format("{}={}", pl.lit(name), pl.col(name).cast(pl.String)) for name in PROVENANCE.values()],
        separator=", ",
        ignore_nulls=True,
    )
    recorded = pl.any_horizontal(pl.col(n).is_not_null() for n in PROVENANCE.values())
    is_protocol = pl.any_horizontal(pl.col("metric").str.starts_with(p) for p in PROTOCOL_PREFIXES)
    long = long.with_columns(pl.when(is_protocol & recorded).then(protocol).otherwise(None).alias("protocol"))
    tidy = long.join(runs.select([*RUN_COLUMNS, *varying]), on="run", how="left")
    return tidy.select([*TIDY_BASE, *varying]).sort("run", "step", "metric", maintain_order=True)


def flatten_config(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> dotted keys (lists kept as values; W&B ``{"value": x}`` wrappers unwrapped)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if str(k).startswith("_"):
            continue
        key = f"{prefix}{k}"
        if isinstance(v, dict) and set(v) == {"value"}:
            v = v["value"]
        if isinstance(v, dict):
            out.update(flatten_config(v, f"{key}."))
        else:
            out[key] = v
    return out


def _unique_name(name: str, taken: set[str]) -> str:
    out, i = str(name), 2
    while out in taken:
        out, i = f"{name} [{i}]", i + 1
    taken.add(out)
    return out


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}
