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
    """Evaluate a finished run's EMA generator (latest checkpoint) under another protocol.

    \b
    Example (the standard protocol of the experiment report):
      raydrift evaluate runs/mnist --feature-net inception --num-samples 4096 --reference test \\
          --inception-weights pt_inception.pth
    Appends the result to RUN_DIR/evaluations.jsonl (not metrics.jsonl: its FIDs have another protocol).
    """
    import torch

    from raydrift.data.datasets import load_split
    from raydrift.evaluation.evaluator import Evaluator
    from raydrift.nets.generators import build_generator
    from raydrift.training.checkpoint import load_checkpoint
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
    try:
        cfg = apply_overrides(load_config(run_dir / CONFIG_FILE), overrides)
    except (ConfigError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    states = sorted(run_dir.rglob("state.pt"), key=lambda p: p.stat().st_mtime)
    if not states:
        raise click.ClickException(f"no checkpoint (state.pt) under {run_dir}")
    check_data(cfg)
    state = load_checkpoint(states[-1])
    data = load_split(cfg.data, "train", seed=cfg.train.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    generator = build_generator(cfg.model, data.sample_shape, data.num_classes).to(device)
    generator.load_state_dict(state["ema"])
    click.echo(
        f"evaluating step {state['step']} of {run_dir} ({cfg.eval.feature_net}, {cfg.eval.num_samples} "
        f"samples vs {cfg.eval.reference})"
    )
    metrics = {"step": state["step"]} | Evaluator(cfg, data, device, None).evaluate(generator, state["step"])
    append_record(run_dir, metrics, name=EVALUATIONS_FILE)
    click.echo(run_summary([metrics]))
