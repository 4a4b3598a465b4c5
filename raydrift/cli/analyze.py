"""``raydrift analyze``: seed-averaged and matched-step tables and plots of experiments (a click group).

The command line of the :mod:`analysis` package (polars); only click is imported here at module level, so
``raydrift train`` does not pay for polars or matplotlib.
"""

from __future__ import annotations

import functools
import tempfile
import warnings
from pathlib import Path

import click

DEFAULT_COMMAND = "report"


class _DefaultGroup(click.Group):
    """``raydrift analyze DIR ...`` runs the ``report`` subcommand; named subcommands still work."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [DEFAULT_COMMAND, *args]
        elif not args:
            args = [DEFAULT_COMMAND]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultGroup)
def analyze() -> None:
    """A verdict (configurations ranked at the common step, each tested against the best), then seed-averaged
    and matched-step tables (mean ± 95% CI), paired differences and plots.

    `raydrift analyze DIR ...` runs the `report` subcommand (see `raydrift analyze report --help`).

    \b
    Examples:
      raydrift analyze runs/kernels                                  # report per swept config
      raydrift analyze runs/kernels --by kernel --at-step 16000 --baseline kernel=laplace --out out/
      raydrift analyze runs/kernels --where n_neg=64 --label "{kernel}, {temperatures}" --dry-run
      raydrift analyze export-wandb me/mnist --out wandb_runs --stage bs64=fq036xiu,n4408um6
      raydrift analyze wandb_runs --by batch_n_pos,kernel --label "bs{batch_n_pos} + {kernel}" --at-step 16000
      raydrift analyze --wandb me/mnist --filter config.kernel=gaussian --out out/   # live, needs a login
    """


_WANDB_OPTIONS = [
    click.option(
        "--filter",
        "filters",
        multiple=True,
        metavar="KEY=VALUE",
        help="W&B run filter, MongoDB-style key (config.kernel=gaussian, state=finished, group=sweep1); JSON values.",
    ),
    click.option("--run", "run_ids", multiple=True, metavar="ID", help="Export only these W&B run ids."),
    click.option(
        "--stage",
        "stages",
        multiple=True,
        metavar="NAME=ID1,ID2",
        help="Declare W&B runs as stages 0, 1, ... of one logical run NAME (resumes logged as separate runs).",
    ),
    click.option(
        "--step-key",
        default="step",
        show_default=True,
        help="History key holding the training step (falls back to W&B's _step).",
    ),
    click.option("--rename", multiple=True, metavar="OLD=NEW", help="Rename a history key, e.g. fid=eval/fid."),
    click.option(
        "--seed-key", default=None, help="Config key of the seed (default: a key named seed, e.g. train.seed)."
    ),
]


def _wandb_options(f):
    for option in reversed(_WANDB_OPTIONS):
        f = option(f)
    return f


def _say_corrupt_lines(f):
    """Run ``f`` printing each damaged line of a metrics file as ``warning: FILE:LINE: ...`` (every time)."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        from raydrift.training.rundir import CorruptLineWarning

        with warnings.catch_warnings():
            warnings.simplefilter("always", CorruptLineWarning)
            show = warnings.showwarning

            def say(message, category, *rest, **kw):
                if issubclass(category, CorruptLineWarning):
                    click.echo(f"warning: {message}", err=True)
                else:
                    show(message, category, *rest, **kw)

            warnings.showwarning = say
            return f(*args, **kwargs)

    return wrapper


@analyze.command(DEFAULT_COMMAND)
@click.argument("sources", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--by",
    default=None,
    metavar="KEYS",
    help="Comma-separated grouping keys, short (kernel) or dotted (drift.kernel). Default: the keys the study swept.",
)
@click.option(
    "--at-step",
    "at_steps",
    multiple=True,
    type=click.IntRange(min=0),
    metavar="N",
    help="Matched-step table at step N (each run's last value at or before N; runs that ended before N are "
    "left out); repeatable. The common step (the last step every finished run reached) always has one.",
)
@click.option(
    "--baseline",
    default=None,
    metavar="GROUP",
    help="Paired differences against this group: its label, a group_id, or key=value[,key=value].",
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="KEY",
    help="Metrics of the matched-step tables and curves.  [default: train/loss, eval/fid, eval/diversity, eval/is]",
)
@click.option(
    "--where",
    "where_",
    multiple=True,
    metavar="KEY=VALUE",
    help="Keep only runs whose config matches (KEY=A|B: either); repeatable (all must hold).",
)
@click.option(
    "--label",
    default=None,
    metavar="FORMAT",
    help='Row label format over the grouping keys\' short names, e.g. "bs{batch_n_pos} + {kernel}".',
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write report.md, tables (.md/.csv/.parquet), tidy.parquet and PNG plots here.",
)
@click.option("--plots/--no-plots", default=True, show_default=True, help="Write PNG plots (with --out).")
@click.option(
    "--digits",
    default=None,
    type=click.IntRange(0, 12),
    help="Decimals of values without an interval (one seed, or equal values).  [default: 4 significant digits; "
    "values with an interval follow it: 38.9 ± 3.7]",
)
@click.option(
    "--rank-by",
    default=None,
    metavar="KEY",
    help="Metric of the verdict (lower is better, IS-like: higher).  [default: the study's metric, else eval/fid]",
)
@click.option(
    "--export-curves",
    "curves_csv",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE.csv",
    help="Also write every run's curve of the verdict's metric (--rank-by, default eval/fid) as the CSV that "
    "benchmarks/scheduler_replay.py replays: group, seed, step, images_seen, fid, grouping keys.",
)
@click.option("--dry-run", is_flag=True, help="List the runs found and their groups, then stop.")
@click.option(
    "--wandb",
    "wandb_path",
    default=None,
    metavar="ENTITY/PROJECT",
    help="Also load runs live from W&B (exported first; see export-wandb).",
)
@click.option(
    "--wandb-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where --wandb exports to.  [default: OUT/wandb-export, or a temporary directory]",
)
@_wandb_options
@_say_corrupt_lines
def report(
    sources,
    by,
    at_steps,
    baseline,
    metrics,
    where_,
    label,
    out,
    plots,
    digits,
    rank_by,
    curves_csv,
    dry_run,
    wandb_path,
    wandb_dir,
    filters,
    run_ids,
    stages,
    step_key,
    rename,
    seed_key,
):
    """The verdict, then tables (and, with --out, files and plots) for the runs under SOURCES (experiment
    directories)."""
    import polars as pl

    from analysis.grouping import GroupingError, make_grouping, where
    from analysis.load import RunDirError, load
    from analysis.report import analyze as run_analysis
    from analysis.report import runs_listing, write
    from analysis.tables import REPORT_METRICS

    sources = list(sources)
    if wandb_path:
        target = wandb_dir or (out / "wandb-export" if out else Path(tempfile.mkdtemp(prefix="raydrift-wandb-")))
        _export(
            wandb_path,
            target,
            filters,
            run_ids,
            stages,
            step_key,
            rename,
            seed_key,
            download_media=plots and out is not None,
        )
        sources.append(target)
    if not sources:
        raise click.UsageError("give at least one experiment directory (or --wandb ENTITY/PROJECT)")
    by_keys = [k.strip() for k in by.split(",") if k.strip()] if by is not None else None
    try:
        if dry_run:
            res = load(sources)
            res = where(res, where_) if where_ else res
            with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=200):
                click.echo(runs_listing(res, make_grouping(res, by_keys, label)))
            return
        analysis = run_analysis(
            sources,
            by=by_keys,
            where_=where_,
            label=label,
            at_steps=at_steps,
            baseline=baseline,
            metrics=metrics or REPORT_METRICS,
            rank_by=rank_by,
        )
    except (GroupingError, RunDirError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(analysis.markdown(digits))
    if curves_csv is not None:
        from analysis.curves import write_curves

        try:
            n = write_curves(analysis.results, analysis.grouping, curves_csv, rank_by or "eval/fid")
        except GroupingError as err:
            raise click.ClickException(str(err)) from None
        click.echo(f"wrote {n} curve rows to {curves_csv}", err=True)
    if out is not None:
        files = write(analysis, out, digits, plots=plots)
        click.echo(f"wrote {len(files)} files to {out}", err=True)


@analyze.command("export-wandb")
@click.argument("path", metavar="ENTITY/PROJECT")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for the run directories (one per W&B run).",
)
@click.option(
    "--download-media/--no-download-media",
    default=False,
    show_default=True,
    help="Download logged images (sample grids) into each run directory.",
)
@_wandb_options
def export_wandb(path, out, download_media, filters, run_ids, stages, step_key, rename, seed_key):
    """Write W&B runs of ENTITY/PROJECT as run directories for `raydrift analyze` (layout: analysis/README.md)."""
    written = _export(path, out, filters, run_ids, stages, step_key, rename, seed_key, download_media)
    click.echo(f"exported {len(written)} runs to {out}")


def _export(path, out, filters, run_ids, stages, step_key, rename, seed_key, download_media):
    from analysis.wandb_export import export_runs, parse_filters, parse_stages, wandb_api

    bad = [r for r in rename if "=" not in r]
    if bad:
        raise click.BadParameter(f"{bad[0]!r} must look like OLD=NEW (e.g. fid=eval/fid)", param_hint="--rename")
    renames = dict(r.split("=", 1) for r in rename)
    try:
        api = wandb_api()
    except Exception as err:  # no wandb, no login: say so instead of a traceback
        raise click.ClickException(f"the W&B public API is not available ({type(err).__name__}: {err})") from None
    try:
        return export_runs(
            api,
            path,
            out,
            filters=parse_filters(filters),
            run_ids=run_ids,
            stages=parse_stages(stages),
            step_key=step_key,
            rename=renames,
            seed_key=seed_key,
            download_media=download_media,
        )
    except (ValueError, LookupError) as err:
        raise click.ClickException(str(err)) from None
