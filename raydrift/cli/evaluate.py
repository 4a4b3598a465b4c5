"""``raydrift evaluate``: score a finished run's EMA generator, or a samples file, under another protocol."""

from __future__ import annotations

from pathlib import Path

import click

from raydrift.config import ConfigError, apply_overrides, from_dict, load_config

from .common import check_data, run_summary


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
    """Evaluate a finished run's EMA generator (latest checkpoint), or the samples in a samples file
    (benchmarks/gpu_check.py writes one), under another protocol.

    \b
    Examples (the standard protocol of the experiment report):
      raydrift evaluate runs/mnist --feature-net inception --num-samples 4096 --reference test \\
          --inception-weights pt_inception.pth
      raydrift evaluate gpu-check/samples.npz --feature-net inception --reference test \\
          --inception-weights pt_inception.pth --set data.root=DIR --record evaluations.jsonl
    Appends the result to RUN_DIR/evaluations.jsonl (not metrics.jsonl: its FIDs have another protocol).
    A samples file's own config names the dataset; --set data.root=DIR says where it is on this machine.
    """
    import torch

    from raydrift.data.datasets import load_split
    from raydrift.evaluation.evaluator import Evaluator
    from raydrift.evaluation.samples import SamplesFileError, load_samples
    from raydrift.training.rundir import CONFIG_FILE, EVALUATIONS_FILE, append_record

    overrides = list(sets) + [
        f"eval.{k}={v}"
        for k, v in (
            ("feature_net", feature_net),
            ("reference", reference),
            ("inception_weights", inception_weights),
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
        else:
            cfg = load_config(run / CONFIG_FILE)
            cfg = apply_overrides(cfg, overrides + ([f"eval.num_samples={num_samples}"] if num_samples else []))
            out = record or run / EVALUATIONS_FILE
    except (ConfigError, FileNotFoundError, SamplesFileError) as err:
        raise click.ClickException(str(err)) from None
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
        metrics = _evaluate_checkpoint(run, cfg, data, device)
    try:
        append_record(out.parent, metrics, name=out.name)
    except OSError as err:
        raise click.ClickException(f"cannot write the result to {out} ({err}); pass --record FILE") from None
    click.echo(run_summary([metrics]) + f"\n  recorded in {out}")


def _evaluate_checkpoint(run_dir: Path, cfg, data, device) -> dict:
    """The metrics of the EMA generator of ``run_dir``'s latest checkpoint."""
    from raydrift.evaluation.evaluator import Evaluator
    from raydrift.nets.generators import build_generator
    from raydrift.training.checkpoint import load_checkpoint

    states = sorted(run_dir.rglob("state.pt"), key=lambda p: p.stat().st_mtime)
    if not states:
        raise click.ClickException(f"no checkpoint (state.pt) under {run_dir}")
    state = load_checkpoint(states[-1])
    generator = build_generator(cfg.model, data.sample_shape, data.num_classes).to(device)
    generator.load_state_dict(state["ema"])
    click.echo(
        f"evaluating step {state['step']} of {run_dir} ({cfg.eval.feature_net}, {cfg.eval.num_samples} "
        f"samples vs {cfg.eval.reference})"
    )
    return {"step": state["step"]} | Evaluator(cfg, data, device, None).evaluate(generator, state["step"])
