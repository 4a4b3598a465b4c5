"""Exporting W&B runs into run directories (``raydrift analyze export-wandb``), the layout ``analysis.load``
reads, so W&B runs are analysed exactly like Tune trials. ``wandb`` is imported only when a live export is
asked for. The layout is documented in ``analysis/README.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from raydrift.training.rundir import CONFIG_FILE, META_FILE, METRICS_FILE, write_json

from .load import flatten_config

_MEDIA_TYPES = {"image-file", "images/separated"}


def wandb_api() -> Any:
    """The live public API (needs ``wandb`` and a login; only called when asked for)."""
    import wandb

    return wandb.Api()


def parse_stages(specs: Sequence[str]) -> dict[str, tuple[str, int]]:
    """``["bs64=fq036xiu,n4408um6"]`` -> ``{"fq036xiu": ("bs64", 0), "n4408um6": ("bs64", 1)}``."""
    out: dict[str, tuple[str, int]] = {}
    for spec in specs:
        name, sep, ids = spec.partition("=")
        ids_list = [i.strip() for i in ids.split(",") if i.strip()]
        if not sep or not name.strip() or not ids_list:
            raise ValueError(f"--stage {spec!r} must look like LOGICAL_NAME=RUN_ID1,RUN_ID2 (stage order)")
        for k, run_id in enumerate(ids_list):
            if run_id in out:
                raise ValueError(f"run {run_id} is declared in two --stage groups")
            out[run_id] = (name.strip(), k)
    return out


def parse_filters(specs: Sequence[str]) -> dict[str, Any]:
    """``["config.kernel=gaussian", "state=finished"]`` -> a W&B (MongoDB-style) filter dict.

    Values are JSON when they parse (numbers, true, ``{"$in": [...]}``), otherwise strings.
    """
    out: dict[str, Any] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--filter {spec!r} must look like KEY=VALUE (e.g. config.kernel=gaussian)")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def export_runs(
    api: Any,
    path: str,
    out: str | Path,
    *,
    filters: Mapping[str, Any] | None = None,
    run_ids: Sequence[str] = (),
    stages: Mapping[str, tuple[str, int]] | None = None,
    step_key: str = "step",
    rename: Mapping[str, str] | None = None,
    seed_key: str | None = None,
    download_media: bool = False,
) -> list[Path]:
    """Write one run directory per W&B run of ``path`` (``entity/project``) under ``out``.

    ``filters`` is a W&B filter dict; ``run_ids`` restricts the export to those runs (and the runs named in
    ``stages``, which maps a run id to ``(logical run, stage)``). Every run named in ``run_ids`` or ``stages``
    must be found. Returns the run directories written.
    """
    stages = dict(stages or {})
    query = dict(filters or {})
    wanted = list(dict.fromkeys([*run_ids, *stages])) if run_ids else []
    if wanted:
        query = {"$and": [query, {"name": {"$in": wanted}}]} if query else {"name": {"$in": wanted}}
    written, seen = [], set()
    for run in api.runs(path, filters=query or None):
        logical, stage = stages.get(run.id, (None, 0))
        run_dir = Path(out) / _safe(f"{run.name}-{run.id}")
        run_dir.mkdir(parents=True, exist_ok=True)
        config = {k: v for k, v in dict(run.config).items() if not str(k).startswith("_")}
        rows = run.scan_history(page_size=1000)
        records = (_record(row, run, run_dir, stage, step_key, rename or {}, download_media) for row in rows)
        _write_jsonl(run_dir / METRICS_FILE, (r for r in records if r is not None))
        write_json(run_dir / CONFIG_FILE, config)
        write_json(run_dir / META_FILE, _meta(run, path, config, logical, stage, seed_key))
        written.append(run_dir)
        seen.add(run.id)
    missing = (set(run_ids) | set(stages)) - seen
    if missing:
        raise LookupError(f"W&B runs not found in {path}: {', '.join(sorted(missing))}")
    return written


def _record(
    row: Mapping[str, Any],
    run: Any,
    run_dir: Path,
    stage: int,
    step_key: str,
    rename: Mapping[str, str],
    download_media: bool,
) -> dict[str, Any] | None:
    step = row.get(step_key)
    step = row.get("_step") if step is None else step
    if step is None:
        return None
    rec: dict[str, Any] = {"time": row.get("_timestamp"), "step": int(step), "stage": stage}
    for key, value in row.items():
        if key.startswith("_") or key in (step_key, "step", "stage"):
            continue
        key = rename.get(key, key)
        if isinstance(value, Mapping):
            if value.get("_type") in _MEDIA_TYPES and value.get("path"):
                rec[key] = _media(run, value["path"], run_dir, download_media)
            continue
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        if value is None or isinstance(value, (bool, int, float, str)):
            rec[key] = value
    return rec


def _media(run: Any, remote: str, run_dir: Path, download: bool) -> str:
    if not download:
        return f"wandb:{remote}"
    run.file(remote).download(root=str(run_dir), replace=True)
    return str(run_dir / remote)


def _meta(run: Any, path: str, config: dict, logical: str | None, stage: int, seed_key: str | None) -> dict:
    flat = flatten_config(config)
    seed_keys = [seed_key] if seed_key else [k for k in flat if k.rsplit(".", 1)[-1] == "seed"]
    seed = next((flat[k] for k in seed_keys if isinstance(flat.get(k), int)), None)
    rest = {k: v for k, v in flat.items() if k not in seed_keys}
    meta = {
        "experiment": path,
        "trial_id": run.id,
        "run_name": run.name,
        "group_id": hashlib.sha1(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()[:8],
        "group_label": getattr(run, "group", None) or "",
        "seed": seed,
        "overrides": {},
        "preset": "",
        "source": "wandb",
        "stage": stage,
        "wandb": {
            "path": path,
            "id": run.id,
            "name": run.name,
            "group": getattr(run, "group", None),
            "url": getattr(run, "url", None),
            "state": getattr(run, "state", None),
            "tags": list(getattr(run, "tags", None) or []),
        },
    }
    if logical:
        meta["logical_run"] = logical
    return meta


def _write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")
    tmp.replace(path)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", name).strip("._") or "run"
