"""``raydrift encoder``: train raydrift's own MAE feature encoder and list the encoders."""

from __future__ import annotations

import json
from pathlib import Path

import click

from raydrift.data.registry import DATASETS

DEFAULT_DIR = Path("~/.cache/raydrift/encoders")


@click.group()
def encoder() -> None:
    """Feature encoders for drift.space=feature.

    \b
    Examples:
      raydrift encoder train --dataset mnist --root ../shared/data/mnist --out mae-mnist.pt
      raydrift train --preset mnist --set drift.space=feature --set drift.encoder=mae \\
          --set drift.encoder_weights=mae-mnist.pt
      raydrift encoder list
    """


@encoder.command("list")
def list_encoders() -> None:
    """List the encoders (drift.encoder values), their default input size and weights."""
    from raydrift.nets.encoders import ENCODERS

    for name, spec in ENCODERS.items():
        size = f"{spec.input_size} px" if spec.input_size else "native"
        click.echo(f"{name:11s} {size:8s} {spec.description}")


@encoder.command()
@click.option("--dataset", type=click.Choice([name for name, info in DATASETS.items() if info.is_image]), required=True)
@click.option("--root", default="", help="Dataset directory (default: ~/.cache/raydrift/data/<dataset>).")
@click.option("--download", is_flag=True, help="Download the dataset with torchvision if missing.")
@click.option("--out", default="", help="Weights file to write [default: ~/.cache/raydrift/encoders/mae-<dataset>.pt]")
@click.option("--steps", type=int, default=2000, show_default=True, help="Optimizer steps.")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--lr", type=float, default=2e-3, show_default=True, help="Peak AdamW learning rate (cosine decay).")
@click.option("--widths", default="32,64,128,256", show_default=True, help="Channels of each stage.")
@click.option("--blocks", type=int, default=1, show_default=True, help="Residual blocks per stage.")
@click.option("--patch-size", type=int, default=0, help="Mask patch size [default: 2 up to 16 px images, else 4].")
@click.option("--mask-ratio", type=float, default=0.5, show_default=True, help="Fraction of patches masked.")
@click.option("--ema-decay", type=float, default=0.999, show_default=True, help="EMA of the saved encoder.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default).")
@click.option("--device", default="auto", show_default=True, help="cuda, cpu, ... (auto: cuda when available).")
@click.option("--probe/--no-probe", default=True, show_default=True, help="Report k-NN accuracy on test data.")
@click.option("--dry-run", is_flag=True, help="Load the data and print the plan; train nothing.")
def train(
    dataset,
    root,
    download,
    out,
    steps,
    batch_size,
    lr,
    widths,
    blocks,
    patch_size,
    mask_ratio,
    ema_decay,
    seed,
    threads,
    device,
    probe,
    dry_run,
):
    """Train the MAE encoder (GroupNorm ResNet, masked-patch L2, EMA) on DATASET's train split."""
    import torch

    from raydrift.data.datasets import load_dataset
    from raydrift.nets.mae import MAEArch, knn_accuracy, save_mae, train_mae

    if threads:
        torch.set_num_threads(threads)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    data = load_dataset(dataset, "train", root or None, download=download)
    C, H, W = data.sample_shape
    arch = MAEArch(in_channels=C, widths=tuple(int(w) for w in widths.split(",")), blocks=blocks)
    patch_size = patch_size or (2 if max(H, W) <= 16 else 4)
    out_path = Path(out or DEFAULT_DIR / f"mae-{dataset}.pt").expanduser()
    click.echo(
        f"MAE on {dataset} ({len(data)} images {C}x{H}x{W}): widths {arch.widths}, {blocks} block(s)/stage, "
        f"patch {patch_size}, mask {mask_ratio}, {steps} steps x {batch_size}, lr {lr}, EMA {ema_decay} "
        f"-> {out_path}"
    )
    if dry_run:
        return
    net, summary = train_mae(
        data.x,
        arch=arch,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        patch_size=patch_size,
        mask_ratio=mask_ratio,
        ema_decay=ema_decay,
        seed=seed,
        device=device,
        log=click.echo,
    )
    meta = summary | {"dataset": dataset, "image_shape": [C, H, W], "train_images": len(data)}
    if probe:
        test = load_dataset(dataset, "test", root or None, download=download)
        n_train, n_test = min(len(data), 10000), min(len(test), 2000)
        meta["knn_accuracy"] = knn_accuracy(net, data.x[:n_train], data.y[:n_train], test.x[:n_test], test.y[:n_test])
        click.echo(f"k-NN (k=10) test accuracy of the pooled features: {meta['knn_accuracy']:.4f}")
    save_mae(out_path, net, meta)
    brief = {k: meta[k] for k in ("final_loss", "seconds", "knn_accuracy") if k in meta}
    click.echo(f"wrote {out_path} {json.dumps(brief)}")
    click.echo(f"use it with: --set drift.space=feature --set drift.encoder=mae --set drift.encoder_weights={out_path}")
