"""``raydrift evaluate``: score a finished run's EMA generator, or a samples file, under another protocol."""

from __future__ import annotations

from pathlib import Path

import click

from raydrift.config import ConfigError, apply_overrides, from_dict, load_config

from .common import absolute_paths, check_data, run_summary


@click.command()
@click.argument("run", metavar="RUN_DIR|SAMPLES.npz", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--feature-net",
    type=click.Choice(["classifier", "inception", "identity"]),
    default=None,
    help="FID features (default: the run's).",
)
@click.option(
    "--num-samples",
    type=int,
    default=None,
    help="Generated samples (default: the run's; for a samples file: all of it, or its first N).",
)
@click.option("--reference", type=click.Choice(["train", "test"]), default=None, help="Real split of the reference.")
@click.option("--inception-weights", default=None, help="TF-Inception pool3 weights file (default: download).")
@click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSON-lines file the result is appended to (default: RUN_DIR/evaluations.jsonl, "
    "or SAMPLES.evaluations.jsonl beside a samples file).",
)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Any other override, e.g. data.root=DIR.")
def evaluate(run, feature_net, num_samples, reference, inception_weights, record, sets):
    """Evaluate a finished run's EMA generator (its checkpoint of the highest step), or the samples in a
    samples file (benchmarks/gpu_check.py writes one), under another protocol.

    RUN_DIR is a run directory (`raydrift train`), or a study trial's `trial_<id>/` or `train-<id>/`.

    \b
    Examples (the standard protocol of the experiment report):
      raydrift evaluate runs/mnist --feature-net inception --num-samples 4096 --reference test \\
          --inception-weights pt_inception.pth
      raydrift evaluate gpu-check/samples.npz --feature-net inception --reference test \\
          --inception-weights pt_inception.pth --set data.root=DIR --record evaluations.jsonl
    Appends the result to the run's evaluations.jsonl (a trial's: in trial_<id>/), not to metrics.jsonl: its
    FIDs have another protocol. A samples file's own config names the dataset; --set data.root=DIR says where
    it is on this machine.
    """
    import torch

    from raydrift.data.datasets import load_split
    from raydrift.evaluation.evaluator import Evaluator
    from raydrift.evaluation.samples import SamplesFileError, load_samples
    from raydrift.training.rundir import CONFIG_FILE, EVALUATIONS_FILE, append_record

    overrides = absolute_paths(sets) + [
        f"{k}={v}"
        for k, v in (
            ("eval.feature_net", feature_net),
            ("eval.reference", reference),
            ("eval.inception_weights", inception_weights),
        )
        if v is not None
    ]
    samples = None
    try:
        if run.is_file():
            images, labels, meta = load_samples(run)
            if num_samples is not None and not 2 <= num_samples <= len(images):
                raise click.BadParameter(
                    f"{run} holds {len(images)} samples; ask for 2 to {len(images)}", param_hint="--num-samples"
                )
            n = num_samples or len(images)
            samples = images[:n], labels[:n]
            cfg = apply_overrides(from_dict(meta["config"]), overrides + [f"eval.num_samples={n}"])
            step = meta.get("step")
            out = record or run.with_name(run.name + ".evaluations.jsonl")
            config_dir = checkpoint_dir = None
        else:
            config_dir, checkpoint_dir = trial_dirs(run)
            if not (config_dir / CONFIG_FILE).is_file():
                raise click.ClickException(
                    f"{run} is not a run directory: no {CONFIG_FILE} in it"
                    + (f" or in {config_dir}" if config_dir != run else "")
                    + " (give a run directory, a study trial's trial_<id>/ or train-<id>/, or a samples file)"
                )
            try:
                saved = load_config(config_dir / CONFIG_FILE)
            except (ValueError, TypeError) as err:  # not JSON, or not a raydrift config
                raise click.ClickException(f"{config_dir / CONFIG_FILE} cannot be read: {err}") from None
            try:
                cfg = apply_overrides(saved, overrides + ([f"eval.num_samples={num_samples}"] if num_samples else []))
            except ConfigError as err:
                raise click.BadParameter(str(err), param_hint="--set") from None
            out = record or config_dir / EVALUATIONS_FILE
    except (ConfigError, FileNotFoundError, SamplesFileError) as err:
        raise click.ClickException(str(err)) from None
    if cfg.eval.inception_weights and not Path(cfg.eval.inception_weights).expanduser().is_file():
        raise click.BadParameter(
            f"no such file: {cfg.eval.inception_weights!r} (a TF-Inception pool3 weights file; leave the option out "
            "to download it)",
            param_hint="--inception-weights",
        )
    if cfg.eval.feature_net == "inception" and cfg.eval.inception_weights:
        from raydrift.evaluation.inception import check_weights_file

        check_weights_file(Path(cfg.eval.inception_weights).expanduser())  # before minutes of loading
    check_data(cfg)
    data = load_split(cfg.data, "train", seed=cfg.train.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if samples is not None:
        images, labels = samples
        if tuple(images.shape[1:]) != data.sample_shape or int(labels.max()) >= data.num_classes:
            raise click.ClickException(
                f"{run} holds images {tuple(images.shape[1:])} of labels up to {int(labels.max())}, but "
                f"{cfg.data.dataset} has {tuple(data.sample_shape)} images of {data.num_classes} classes"
            )
        click.echo(
            f"evaluating {len(images)} samples of {run} (step {step}; {cfg.eval.feature_net}, vs {cfg.eval.reference})"
        )
        evaluator = Evaluator(cfg, data, device, None)
        metrics = {"step": step, "samples_file": str(run)} | evaluator.score(images, labels)
    else:
        metrics = _evaluate_checkpoint(run, config_dir, checkpoint_dir, cfg, data, device)
    try:
        append_record(out.parent, metrics, name=out.name)
    except OSError as err:
        raise click.ClickException(f"cannot write the result to {out} ({err}); pass --record FILE") from None
    click.echo(run_summary([metrics]) + f"\n  recorded in {out}")


def _evaluate_checkpoint(run_dir: Path, config_dir: Path, checkpoint_dir: Path, cfg, data, device) -> dict:
    """The metrics of the EMA generator of the highest-step complete checkpoint under ``checkpoint_dir``."""
    from raydrift.evaluation.evaluator import Evaluator
    from raydrift.nets.generators import build_generator
    from raydrift.training.checkpoint import find_checkpoints, load_latest_good
    from raydrift.training.rundir import CONFIG_FILE

    found = load_latest_good(find_checkpoints(checkpoint_dir), log=click.echo)
    if found is None:
        raise click.ClickException(f"no checkpoint (state.pt) under {checkpoint_dir}")
    _, state = found
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
    return {"step": state["step"]} | Evaluator(cfg, data, device, None).evaluate(generator, state["step"])


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
