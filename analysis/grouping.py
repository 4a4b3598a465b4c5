"""Which runs form a group (the ``--by`` axes), how groups are labelled and ordered, and which runs pair.

A group is the set of runs that share the values of the ``by`` config keys; by default those are the keys
the study swept (the union of ``meta.json`` overrides), which makes a group one config (one ``group_id``)
and its runs the seeds. Grouping by fewer keys pools configs (n then counts runs, and the tables say so).
Keys can be given by their last component (``kernel``) or dotted (``drift.kernel``).

Paired differences match a run with the baseline group's run of the same *pair key*: the seed plus every
candidate key that varies inside a group (so grouping by kernel alone pairs runs on seed and batch size).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from .load import Results, format_value

# Config keys that name or place a run rather than configure it: never default grouping axes.
_NOT_AXES = re.compile(r"(^|\.)(seed|name|run_name|output_dir|root|cache_dir|inception_weights)$|^wandb\.")


class GroupingError(ValueError):
    """A ``--by``, ``--where`` or ``--baseline`` that does not match the loaded runs."""


def short_name(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def resolve_key(name: str, res: Results) -> str:
    """Config column for ``name``: exact (dotted) or by last component, preferring swept keys."""
    columns = res.config_columns
    if name in columns:
        return name
    matches = [c for c in columns if short_name(c) == name]
    if len(matches) > 1:
        matches = [c for c in matches if c in res.swept] or matches
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise GroupingError(f"no config key {name!r} in the loaded runs; keys that vary: {varying_keys(res)}")
    raise GroupingError(f"{name!r} is ambiguous: {', '.join(matches)}; give the dotted key")


def varying_keys(res: Results) -> list[str]:
    """Config keys whose value differs between runs (excluding names, paths and seeds)."""
    return [c for c in res.config_columns if not _NOT_AXES.search(c) and res.runs[c].cast(pl.String).n_unique() > 1]


def default_by(res: Results) -> list[str]:
    """The swept keys (union of meta.json overrides) that vary between runs, then every other config key that
    varies: runs whose configs differ are never pooled unless ``--by`` asks for it (and the table then says
    so). Where nothing varies (one configuration), the swept keys label it."""
    swept, varying = _swept(res), varying_keys(res)
    keys = [c for c in swept if c in varying] + [c for c in varying if c not in swept]
    return keys or swept  # one configuration: labelled by what its study set


def _swept(res: Results) -> list[str]:
    """The swept keys that can be axes: not seeds, names or paths (``raydrift train --set train.seed=1``
    records its seed among the overrides; runs differing only in it are seeds of one configuration)."""
    return [c for c in res.swept if not _NOT_AXES.search(c)]


def where(res: Results, specs: Sequence[str]) -> Results:
    """Runs matching every ``key=value`` spec; ``key=a|b`` matches either value. Numbers compare
    numerically, other values as shown in labels (lists as ``(0.02,0.05,0.2)``)."""
    keep = pl.lit(True)
    for spec in specs:
        if "=" not in spec:
            raise GroupingError(f"--where {spec!r} must look like key=value (e.g. kernel=gaussian)")
        name, value = (s.strip() for s in spec.split("=", 1))
        col = resolve_key(name, res)
        hits = [_equals(res.runs[col], v.strip()) for v in value.split("|")]
        keep = keep & pl.any_horizontal(hits)
    out = res.select_runs(keep)
    if out.runs.height == 0:
        raise GroupingError(f"no run matches {' and '.join(specs)}")
    return out


def _equals(series: pl.Series, value: str) -> pl.Series:
    if series.dtype.is_numeric():
        try:
            return (series == float(value)).fill_null(False)
        except ValueError:
            return pl.Series([False] * len(series))
    return (series.cast(pl.String) == value).fill_null(False)


@dataclass
class Grouping:
    """``runs``: ``run, group, seed`` plus the by and pair-key columns; ``labels`` in table order."""

    by: list[str]
    labels: list[str]
    runs: pl.DataFrame
    pair_keys: list[str]
    pooled: dict[str, list[str]]  # label -> the keys that vary inside it (configs pooled by a coarse --by)

    def seeds(self, label: str) -> int:
        return self.runs.filter(pl.col("group") == label)["seed"].n_unique()

    def size(self, label: str) -> int:
        return self.runs.filter(pl.col("group") == label).height

    @property
    def n_counts(self) -> str:
        """What n counts in this grouping's cells: ``seeds`` when every group is one config whose runs have
        distinct seeds, else ``runs``."""
        one_config = not any(self.pooled.values())
        distinct = all(self.seeds(label) == self.size(label) for label in self.labels)
        return "seeds" if one_config and distinct else "runs"

    def preliminary(self, label: str) -> bool:
        """A conclusion from one seed is preliminary."""
        return self.seeds(label) < 2

    def baselines(self, spec: str) -> dict[str, str]:
        """Each group's baseline: ``{group: baseline group}`` for every group that is not a baseline.

        A spec that names one group is every group's baseline. A ``key=value`` spec that matches several
        groups (``kernel=laplace`` in a kernel x normalisation study) gives each other group the baseline
        group that shares its values on every other grouping key: gaussian+xy against laplace+xy, and so on.
        """
        hits, keys = self._match(spec)
        if not hits:
            raise GroupingError(f"baseline {spec!r} matches no group; groups: {'; '.join(self.labels)}")
        if len(hits) == 1:
            return {g: hits[0] for g in self.labels if g != hits[0]}
        if not keys:
            raise GroupingError(f"baseline {spec!r} matches {len(hits)} groups ({'; '.join(hits)})")
        others = [c for c in self.by if c not in keys]
        first = self.runs.unique("group", keep="first").iter_rows(named=True)
        setting = {row["group"]: tuple(format_value(row[c]) for c in others) for row in first}
        by_setting = {setting[g]: g for g in hits}  # hits share the spec's keys, so differ in the others
        pairs = {g: by_setting.get(setting[g]) for g in self.labels if g not in hits}
        missing = [g for g, b in pairs.items() if b is None]
        if missing:
            raise GroupingError(f"baseline {spec!r}: no baseline group with the other settings of {'; '.join(missing)}")
        return pairs

    def _match(self, spec: str) -> tuple[list[str], list[str]]:
        """Groups matching ``spec`` and, for a ``key=value`` spec, the grouping keys it names."""
        if spec in self.labels:
            return [spec], []
        hits = self.runs.filter(pl.col("group_id") == spec)["group"].unique().to_list()
        if hits or "=" not in spec:
            return hits, []
        rows, keys = self.runs, []
        for part in spec.split(","):
            name, value = (s.strip() for s in part.split("=", 1))
            col = next((c for c in self.by if name in (c, short_name(c))), None)
            if col is None:
                raise GroupingError(f"baseline key {name!r} is not a grouping key ({', '.join(self.by)})")
            rows = rows.filter(_equals(rows[col], value))
            keys.append(col)
        return [g for g in self.labels if g in set(rows["group"].to_list())], keys


def make_grouping(res: Results, by: Sequence[str] | None = None, label: str | None = None) -> Grouping:
    """Group ``res.runs`` by the ``by`` keys (default: ``default_by``); ``label`` is a format string over
    the keys' short names (e.g. ``"bs{batch_n_pos} + {kernel}"``), default ``kernel=gaussian, n_neg=64``."""
    keys = [resolve_key(b, res) for b in by] if by is not None else default_by(res)
    runs = res.runs
    labels = [_label(row, keys, label) for row in runs.select(keys).iter_rows(named=True)] if keys else None
    runs = runs.with_columns(pl.Series("group", labels or ["all runs"] * runs.height, dtype=pl.String))
    order = _group_order(runs, keys)
    if keys:
        clash = runs.group_by("group").agg(pl.struct(keys).n_unique().alias("k")).filter(pl.col("k") > 1)
        if clash.height:
            raise GroupingError(f"--label gives the same label to different groups: {clash['group'].to_list()}")
    candidates = _swept(res) or varying_keys(res)
    inside = {
        c: runs.group_by("group").agg(pl.col(c).cast(pl.String).n_unique().alias("k")).filter(pl.col("k") > 1)
        for c in candidates
        if c not in keys
    }
    pair_keys = [c for c, k in inside.items() if k.height]
    pooled = {g: [c for c, k in inside.items() if g in k["group"].to_list()] for g in order}
    cols = ["run", "group", "group_id", "seed", *dict.fromkeys([*keys, *pair_keys])]
    return Grouping(keys, order, runs.select(cols), ["seed", *pair_keys], pooled)


def _label(row: dict, keys: list[str], fmt: str | None) -> str:
    values = {short_name(k): "—" if row[k] is None else format_value(row[k]) for k in keys}
    if fmt:
        try:
            return fmt.format(**values)
        except KeyError as err:
            raise GroupingError(f"--label uses {err}, which is not a grouping key ({', '.join(values)})") from None
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _group_order(runs: pl.DataFrame, keys: list[str]) -> list[str]:
    """Numbers ascending, other values in order of first appearance, per key in ``keys`` order."""
    ranks = []
    for k in keys:
        col = runs[k]
        if col.dtype.is_numeric():
            values = sorted(v for v in col.unique().to_list() if v is not None)
        else:
            values = [v for v in col.unique(maintain_order=True).to_list() if v is not None]
        ranks.append({v: i for i, v in enumerate(values)})
    first = runs.unique("group", keep="first", maintain_order=True)
    rows = [
        (tuple(r.get(row[k], len(r)) for r, k in zip(ranks, keys)), row["group"]) for row in first.iter_rows(named=True)
    ]
    return [g for _, g in sorted(rows, key=lambda x: x[0])]


def split_by_end(grouping: Grouping, res: Results) -> Grouping:
    """Rows whose runs end at the same step: a group whose runs end at different steps (a seed stopped
    early) becomes one row per final step, ``<label> (ends at step k)``, longest first, so run-end
    statistics (last, min, max) never pool runs of different lengths."""
    ends = grouping.runs.join(res.runs.select("run", "final_step"), on="run", how="left")
    split = ends.group_by("group").agg(pl.col("final_step").n_unique().alias("k")).filter(pl.col("k") > 1)
    split = set(split["group"].to_list())
    if not split:
        return grouping
    label = pl.when(pl.col("group").is_in(list(split)))
    label = label.then(pl.format("{} (ends at step {})", pl.col("group"), pl.col("final_step"))).otherwise("group")
    runs = ends.with_columns(label.alias("group"))
    labels, pooled = [], {}
    for g in grouping.labels:
        if g in split:
            steps = sorted(ends.filter(pl.col("group") == g)["final_step"].unique().to_list(), reverse=True)
            new = [f"{g} (ends at step {k})" for k in steps]
        else:
            new = [g]
        labels += new
        pooled |= dict.fromkeys(new, grouping.pooled.get(g, []))
    return Grouping(grouping.by, labels, runs.drop("final_step"), grouping.pair_keys, pooled)
