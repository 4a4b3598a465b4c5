"""The ``raydrift`` command line.

\b
Examples:
  raydrift train --preset digits                        # one run under Ray Train (embedded data)
  raydrift train --preset mnist --set data.root=DIR --set drift.kernel=gaussian
  raydrift train --preset digits --set train.steps=200 --dry-run
  raydrift train --list-keys                            # every config key, its type and meaning
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .config import Config, ConfigError, apply_overrides, describe_keys, to_dict
from .presets import PRESETS, get_preset


@click.group(help=__doc__)
@click.version_option(package_name="raydrift")
def main() -> None:
    pass


def resolve_config(preset: str, sets: tuple[str, ...], name: str | None = None) -> tuple[Config, dict]:
    """Preset + ``--set`` overrides (+ name) -> validated config and the parsed overrides."""
    cfg = get_preset(preset)
    overrides = dict(item.split("=", 1) for item in sets if "=" in item)
    cfg = apply_overrides(cfg, list(sets))
    if name:
        cfg = apply_overrides(cfg, {"name": name})
    return cfg, overrides


@main.command()
@click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    default="digits",
    show_default=True,
    help="Starting configuration.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key, e.g. --set drift.kernel=gaussian (repeatable; see --list-keys).",
)
@click.option("--name", default=None, help="Run name (default: the preset's name).")
@click.option("--workers", type=int, default=None, help="Shortcut for --set scaling.num_workers=N.")
@click.option("--gpu/--no-gpu", default=None, help="Shortcut for --set scaling.use_gpu=true/false.")
@click.option("--address", default=None, help="Ray cluster address (e.g. auto); default: start a local one.")
@click.option("--resume", is_flag=True, help="Continue an existing run of the same name from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Delete an existing run of the same name first.")
@click.option(
    "--max-failures",
    type=int,
    default=0,
    show_default=True,
    help="Restart failed workers from the last checkpoint up to this many times.",
)
@click.option("--plain", is_flag=True, help="Run in this process without Ray (one worker; for debugging).")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and plan, check the data, run nothing.")
@click.option("--list-keys", is_flag=True, help="List every config key with its type and meaning, then exit.")
def train(preset, sets, name, workers, gpu, address, resume, overwrite, max_failures, plain, dry_run, list_keys):
    """Train one drifting model (Ray Train, torch data-parallel: N workers, gloo on CPU, nccl on GPU)."""
    if list_keys:
        for key, tp, doc in describe_keys():
            click.echo(f"{key:28s} {tp:34s} {doc}")
        return
    extra = ([f"scaling.num_workers={workers}"] if workers is not None else []) + (
        [f"scaling.use_gpu={str(gpu).lower()}"] if gpu is not None else []
    )
    try:
        cfg, overrides = resolve_config(preset, tuple(sets) + tuple(extra), name)
    except ConfigError as err:
        raise click.BadParameter(str(err), param_hint="--set") from None
    _check_data(cfg)
    from . import launch

    if dry_run:
        click.echo(json.dumps(to_dict(cfg), indent=2))
        s = cfg.scaling
        click.echo(
            f"\nplan: {cfg.train.steps} steps x {min(cfg.drift.classes_per_step, 10)} classes x "
            f"{cfg.drift.n_neg} samples on {s.num_workers} worker(s) "
            f"({s.cpus_per_worker} CPU{f', {s.gpus_per_worker} GPU' if s.use_gpu else ''} each), "
            f"{'plain process' if plain else 'Ray Train'}; run dir "
            f"{cfg.output_dir}/{cfg.run_name}; eval every {cfg.eval.every} steps ({cfg.eval.feature_net} FID)"
        )
        return
    if launch.run_exists(cfg):
        if overwrite:
            launch.remove_run(cfg)
        elif not resume:
            raise click.ClickException(
                f"run {cfg.output_dir}/{cfg.run_name} exists: pass --resume to continue it, --overwrite to "
                "start over, or --name for a new run"
            )
    if plain:
        _train_plain(cfg, overrides, resume)
    else:
        _train_ray(cfg, overrides, address, max_failures)


def _check_data(cfg: Config) -> None:
    from .data import DatasetNotFoundError
    from .loop import load_training_data

    try:
        load_training_data(cfg)
    except DatasetNotFoundError as err:
        raise click.ClickException(str(err)) from None


def _summary(history: list[dict]) -> str:
    evals = [r for r in history if r.get("eval/fid") is not None]
    if not evals:
        return "no evaluation recorded"
    last = evals[-1]
    parts = [
        f"step {last['step']}: FID {last['eval/fid']:.2f} ({last['eval/fid_net']}, {last['eval/fid_samples']} samples "
        f"vs {last['eval/fid_ref']})",
        f"class-mean generator FID {last['eval/fid_classmean']:.2f}, real-data FID {last['eval/fid_real']:.2f}"
        + (f" ({last['eval/fid_real_n']} held-out images)" if "eval/fid_real_n" in last else ""),
        f"within-class diversity {last['eval/diversity']:.3f} (real {last['eval/diversity_real']:.3f})",
    ]
    if last.get("eval/is") is not None:
        parts.append(f"IS {last['eval/is']:.2f}")
    if last.get("eval/grid"):
        parts.append(f"samples: {last['eval/grid']}")
    return "\n  ".join(parts)


def _train_ray(cfg: Config, overrides: dict, address: str | None, max_failures: int) -> None:
    from .history import read_history
    from .launch import failure_of, root_cause, run_training

    click.echo(f"raydrift: training {cfg.run_name} under Ray Train ({cfg.scaling.num_workers} worker(s))")
    try:
        result = run_training(cfg, overrides=overrides, address=address, max_failures=max_failures)
    except Exception as err:  # Ray wraps worker errors; show the cause, not Ray's stack
        raise click.ClickException(f"training failed: {root_cause(err)}") from None
    if failure := failure_of(result, Path(cfg.output_dir).expanduser().resolve() / cfg.run_name):
        raise click.ClickException(f"training failed: {failure}")
    run_dir = f"{cfg.output_dir}/{cfg.run_name}"
    click.echo(f"done: {run_dir}\n  " + _summary(read_history(run_dir)))


def _train_plain(cfg: Config, overrides: dict, resume: bool) -> None:
    from pathlib import Path

    from .checkpoint import latest_checkpoint
    from .evaluation import Evaluator
    from .history import PlainReporter, read_history
    from .launch import write_run_files
    from .loop import train as train_loop

    run_dir = Path(cfg.output_dir) / cfg.run_name
    write_run_files(
        run_dir,
        cfg,
        {
            "experiment": "",
            "trial_id": "",
            "run_name": cfg.run_name,
            "preset": cfg.preset,
            "seed": cfg.train.seed,
            "overrides": overrides,
            "group_id": "",
            "group_label": "",
        },
    )
    reporter = PlainReporter(run_dir)
    resume_from = latest_checkpoint(reporter.checkpoint_root()) if resume else None
    train_loop(
        cfg,
        reporter,
        resume_from=resume_from,
        evaluator_factory=lambda c, d, dev: Evaluator(c, d, dev, run_dir / "samples"),
        log=lambda s: click.echo(s),
    )
    click.echo(f"done: {run_dir}\n  " + _summary(read_history(run_dir)))


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--feature-net",
    type=click.Choice(["classifier", "inception", "identity"]),
    default=None,
    help="FID features (default: the run's).",
)
@click.option("--num-samples", type=int, default=None, help="Generated samples (default: the run's).")
@click.option("--reference", type=click.Choice(["train", "test"]), default=None, help="Real split of the reference.")
@click.option("--inception-weights", default=None, help="TF-Inception pool3 weights file (default: download).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Any other eval.* override.")
def evaluate(run_dir, feature_net, num_samples, reference, inception_weights, sets):
    """Evaluate a finished run's EMA generator (latest checkpoint) under another protocol.

    \b
    Example (the standard protocol of the experiment report):
      raydrift evaluate runs/mnist --feature-net inception --num-samples 4096 --reference test \\
          --inception-weights pt_inception.pth
    Appends the result to RUN_DIR/evaluations.jsonl (not metrics.jsonl: its FIDs have another protocol).
    """
    import torch

    from .checkpoint import load_checkpoint
    from .config import load_config
    from .evaluation import Evaluator
    from .history import CONFIG_FILE, EVALUATIONS_FILE, append_record
    from .loop import build_generator, load_training_data

    overrides = list(sets) + [
        f"eval.{k}={v}"
        for k, v in (
            ("feature_net", feature_net),
            ("num_samples", num_samples),
            ("reference", reference),
            ("inception_weights", inception_weights),
        )
        if v is not None
    ]
    try:
        cfg = apply_overrides(load_config(run_dir / CONFIG_FILE), overrides)
    except (ConfigError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    states = sorted(run_dir.rglob("state.pt"), key=lambda p: p.stat().st_mtime)
    if not states:
        raise click.ClickException(f"no checkpoint (state.pt) under {run_dir}")
    _check_data(cfg)
    state = load_checkpoint(states[-1])
    data = load_training_data(cfg)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    generator = build_generator(cfg, data.sample_shape, data.num_classes).to(device)
    generator.load_state_dict(state["ema"])
    click.echo(
        f"evaluating step {state['step']} of {run_dir} ({cfg.eval.feature_net}, {cfg.eval.num_samples} "
        f"samples vs {cfg.eval.reference})"
    )
    metrics = {"step": state["step"]} | Evaluator(cfg, data, device, None).evaluate(generator, state["step"])
    append_record(run_dir, metrics, name=EVALUATIONS_FILE)
    click.echo(_summary([metrics]))


@main.command()
def presets() -> None:
    """List the presets and what each is for."""
    for name, fn in PRESETS.items():
        click.echo(f"{name:14s} {(fn.__doc__ or '').strip()}")


def _register_commands() -> None:
    """The study runner, the analysis layer and the encoder tools live in their own modules."""
    from analysis.cli import analyze

    from .encoder_cli import encoder
    from .tune import tune

    for command in (tune, analyze, encoder):
        main.add_command(command)


_register_commands()

if __name__ == "__main__":
    sys.exit(main())
