"""``raydrift evaluate``: score a finished run's EMA generator under another protocol (e.g. Inception FID)."""

from __future__ import annotations

from pathlib import Path

import click

from raydrift.config import ConfigError, apply_overrides, load_config

from .common import check_data, run_summary


@click.command()
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
    """Evaluate a finished run's EMA generator (its checkpoint of the highest step) under another protocol.

    RUN_DIR is a run directory (`raydrift train`), or a study trial's `trial_<id>/` or `train-<id>/`.

    \b
    Example (the standard protocol of the experiment report):
      raydrift evaluate runs/mnist --feature-net inception --num-samples 4096 --reference test \\
          --inception-weights pt_inception.pth
    Appends the result to the run's evaluations.jsonl (a trial's: in trial_<id>/), not to metrics.jsonl: its
    FIDs have another protocol.
    """
    import torch

    from raydrift.data.datasets import load_split
    from raydrift.evaluation.evaluator import Evaluator
    from raydrift.nets.generators import build_generator
    from raydrift.training.checkpoint import find_checkpoints, load_latest_good
    from raydrift.training.rundir import CONFIG_FILE, EVALUATIONS_FILE, append_record

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
    config_dir, checkpoint_dir = trial_dirs(run_dir)
    if not (config_dir / CONFIG_FILE).is_file():
        raise click.ClickException(
            f"{run_dir} is not a run directory: no {CONFIG_FILE} in it"
            + (f" or in {config_dir}" if config_dir != run_dir else "")
            + " (give a run directory, or a study trial's trial_<id>/ or train-<id>/)"
        )
    try:
        saved = load_config(config_dir / CONFIG_FILE)
    except (ValueError, TypeError) as err:  # not JSON, or not a raydrift config
        raise click.ClickException(f"{config_dir / CONFIG_FILE} cannot be read: {err}") from None
    try:
        cfg = apply_overrides(saved, overrides)
    except ConfigError as err:
        raise click.BadParameter(str(err), param_hint="--set") from None
    if cfg.eval.inception_weights and not Path(cfg.eval.inception_weights).expanduser().is_file():
        raise click.BadParameter(
            f"no such file: {cfg.eval.inception_weights!r} (a TF-Inception pool3 weights file; leave the option out "
            "to download it)",
            param_hint="--inception-weights",
        )
    if cfg.eval.feature_net == "inception" and cfg.eval.inception_weights:
        from raydrift.evaluation.inception import check_weights_file

        check_weights_file(Path(cfg.eval.inception_weights).expanduser())  # before minutes of loading
    found = load_latest_good(find_checkpoints(checkpoint_dir), log=click.echo)
    if found is None:
        raise click.ClickException(f"no checkpoint (state.pt) under {checkpoint_dir}")
    _, state = found
    check_data(cfg)
    data = load_split(cfg.data, "train", seed=cfg.train.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    generator = build_generator(cfg.model, data.sample_shape, data.num_classes).to(device)
    try:
        generator.load_state_dict(state["ema"])
    except RuntimeError as err:
        raise click.ClickException(
            f"the checkpoint does not fit the model of {config_dir / CONFIG_FILE} "
            f"({(str(err).splitlines() or [''])[0]}); was a model.* key changed with --set?"
        ) from None
    click.echo(
        f"evaluating step {state['step']} of {run_dir} ({cfg.eval.feature_net}, {cfg.eval.num_samples} "
        f"samples vs {cfg.eval.reference})"
    )
    metrics = {"step": state["step"]} | Evaluator(cfg, data, device, None).evaluate(generator, state["step"])
    append_record(config_dir, metrics, name=EVALUATIONS_FILE)
    click.echo(run_summary([metrics]))


def trial_dirs(run_dir: Path) -> tuple[Path, Path]:
    """(directory with the run's config.json, directory with its checkpoints) for ``run_dir``.

    A run of ``raydrift train`` keeps both in one directory. A study trial splits them: ``trial_<id>/`` has
    config.json and the history, ``train-<id>/`` (its Ray Train run, a sibling) the checkpoints."""
    name = run_dir.name
    if name.startswith("trial_") and (run_dir.parent / f"train-{name[len('trial_') :]}").is_dir():
        return run_dir, run_dir.parent / f"train-{name[len('trial_') :]}"
    if name.startswith("train-") and (run_dir.parent / f"trial_{name[len('train-') :]}").is_dir():
        return run_dir.parent / f"trial_{name[len('train-') :]}", run_dir
    return run_dir, run_dir
