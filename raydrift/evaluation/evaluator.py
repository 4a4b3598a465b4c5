"""Evaluation of the EMA generator: FID (+ IS where the feature net has logits), diversity, sample grid.

Fixed protocol within a run and across runs: class-balanced labels, noise from a fixed seed (the same
for every run and seed of a study), ``eval.num_samples`` samples, reference statistics of one real split
cached on disk. Images are scored as they are shown: generator outputs go through
:func:`raydrift.data.images.to_uint8` (clamped to [-1, 1], rounded to 8 bits, as a PNG holds them) before
every metric, yardstick and grid, and ``eval/clamped_frac`` logs the fraction of raw values that fell
outside [-1, 1]. Every FID is logged with its provenance (``eval/fid_net``, ``eval/fid_samples``,
``eval/fid_ref``, ``eval/fid_ref_n``). Each record also carries the yardsticks a reader needs to judge
it: the FID of a generator that outputs each class's mean image, the FID of ``eval.num_samples`` images of
the other real split (a fixed subset: the floor at this sample count, and bounded cost with a slow feature
net; ``eval/fid_real_n`` says how many), and the real data's within-class diversity.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from raydrift import seeding
from raydrift.cache import cache_dir
from raydrift.data.datasets import Dataset, load_split
from raydrift.data.images import out_of_range, to_float, to_uint8
from raydrift.data.registry import dataset_info
from raydrift.nets.generators import Generator

from .feature_nets import FeatureNet, load_or_train_classifier
from .grids import image_grid, save_png, scatter_plot
from .metrics import FeatureStats, inception_score, stats_to_fid, within_class_diversity
from .refstats import reference_stats

if TYPE_CHECKING:
    from raydrift.config.schema import Config

EVAL_SEED = 20260204  # the same evaluation noise for every run, so runs are compared on equal inputs


class IdentityFeatureNet(FeatureNet):
    """Raw coordinates as features (2-D toys): FID is then the Frechet distance of the point clouds."""

    has_logits = False

    def __init__(self, dim: int):
        self.id, self.dim, self.batch_size = "identity", dim, 4096
        self._device = torch.device("cpu")

    @property
    def device(self) -> torch.device:
        return self._device

    def forward_batch(self, x: torch.Tensor):
        return x.reshape(x.shape[0], -1).float(), None

    def features(self, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        return x.reshape(x.shape[0], -1).float()


def build_feature_net(cfg: Config, train: Dataset, test: Dataset, device) -> FeatureNet:
    e = cfg.eval
    if e.feature_net == "identity":
        return IdentityFeatureNet(int(torch.tensor(train.sample_shape).prod()))
    if e.feature_net == "inception":
        from .inception import InceptionFeatureNet

        return InceptionFeatureNet(e.inception_weights or None, device=device)
    epochs, batch = dataset_info(cfg.data.dataset).classifier_recipe
    return load_or_train_classifier(
        train.name,
        train.x.cpu(),
        train.y,
        train.num_classes,
        cache_dir(e.cache_dir),
        epochs=e.classifier_epochs or epochs,
        batch_size=batch,
        seed=0,
        x_test=test.x,
        y_test=test.y,
        device=device,
    )


class Evaluator:
    """Built once on rank 0; ``evaluate(ema, step)`` returns the ``eval/...`` metrics and writes a grid."""

    def __init__(self, cfg: Config, train: Dataset, device, sample_dir: str | os.PathLike | None):
        self.cfg, self.device = cfg, torch.device(device)
        self.sample_dir = Path(sample_dir) if sample_dir else None
        test = load_split(cfg.data, "test", seed=cfg.train.seed)
        self.train, self.test = train, test
        self.net = build_feature_net(cfg, train, test, self.device)
        ref, other = (train, test) if cfg.eval.reference == "train" else (test, train)
        self.ref_stats, prov = reference_stats(
            self.net,
            train.name,
            cfg.eval.reference,
            lambda: to_float(ref.x.cpu()),
            cache_dir=cache_dir(cfg.eval.cache_dir),
        )
        K, N = train.num_classes, cfg.eval.num_samples
        self.labels = torch.arange(K).repeat((N + K - 1) // K)[:N]  # interleaved: IS splits see every class
        self.provenance = {
            "eval/fid_net": self.net.id,
            "eval/fid_samples": N,
            "eval/fid_ref": prov["reference"],
            "eval/fid_ref_n": int(prov["num_samples"]),
        }
        # Yardsticks: class-mean generator, the other real split, the real within-class diversity.
        real = to_float(other.x.cpu())
        if len(real) > N:  # as many real images as generated ones, always the same subset
            real = real[torch.randperm(len(real), generator=torch.Generator().manual_seed(EVAL_SEED))[:N]]
        self.yardsticks = {
            # N copies of K class means: the features of the K distinct images, repeated (cheap with Inception)
            "eval/fid_classmean": self._fid(self._as_shown(train.class_means()), rows=self.labels),
            "eval/fid_real": self._fid(real),
            "eval/fid_real_n": len(real),
            "eval/diversity_real": within_class_diversity(_flat(ref.get(torch.arange(len(ref)))), ref.y),
        }
        if getattr(self.net, "accuracy", None) is not None:
            self.yardsticks["eval/classifier_acc"] = float(self.net.accuracy)

    def _fid(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> float:
        """FID of images ``x`` (of ``x[rows]`` when given, computing each distinct image's features once)."""
        features = self.net.features(to_float(x).to(self.device), batch_size=self.cfg.eval.batch_size)
        stats = FeatureStats().update(features if rows is None else features[rows.to(features.device)])
        return stats_to_fid(stats, self.ref_stats)

    @torch.no_grad()
    def generate(self, generator: Generator, labels: torch.Tensor) -> torch.Tensor:
        """Samples for ``labels`` from the fixed evaluation noise (independent of the training seed)."""
        g = seeding.generator(EVAL_SEED, purpose="eval", device=self.device)
        labels = labels.to(self.device)
        alpha = torch.full((len(labels),), self.cfg.eval.cfg_alpha, device=self.device)
        inputs = generator.draw_inputs(labels, alpha, generator=g)
        out, bs = [], self.cfg.eval.batch_size
        for i in range(0, len(labels), bs):
            out.append(
                generator(
                    inputs.noise[i : i + bs],
                    inputs.labels[i : i + bs],
                    inputs.alpha[i : i + bs],
                    inputs.style[i : i + bs],
                )
            )
        return torch.cat(out).float()

    def evaluate(self, generator: Generator, step: int) -> dict[str, Any]:
        """The ``eval/...`` metrics of ``generator``'s samples (and, with a sample dir, the grid at ``step``)."""
        generator.eval()
        raw = self.generate(generator, self.labels)
        metrics = self.score(self._as_shown(raw))
        if self.train.x.dtype == torch.uint8:
            metrics["eval/clamped_frac"] = out_of_range(raw)
        if self.sample_dir is not None:
            metrics["eval/grid"] = str(self.save_grid(generator, step))
        return metrics

    def score(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, Any]:
        """FID (+ IS), diversity, provenance and yardsticks of samples ``x`` of ``labels`` (default
        :attr:`labels`), as shown (uint8 images, or float images already through :func:`to_uint8`; toys:
        points as generated)."""
        labels = self.labels if labels is None else labels
        x = to_float(x).to(self.device)
        bs = self.cfg.eval.batch_size
        if self.net.has_logits:
            feats, logits = self.net.features_and_logits(x, batch_size=bs)
        else:
            feats, logits = self.net.features(x, batch_size=bs), None
        metrics: dict[str, Any] = {
            "eval/fid": stats_to_fid(FeatureStats().update(feats), self.ref_stats),
            "eval/diversity": within_class_diversity(_flat(x), labels),
        }
        if logits is not None:
            metrics["eval/is"], metrics["eval/is_std"] = inception_score(logits, from_logits=True)
        return metrics | self.provenance | self.yardsticks

    def _as_shown(self, x: torch.Tensor) -> torch.Tensor:
        """Images as a PNG holds them (uint8), for image data; 2-D toy points unchanged."""
        return to_uint8(x) if self.train.x.dtype == torch.uint8 else x

    def save_grid(self, generator: Generator, step: int) -> Path:
        path = self.sample_dir / f"step_{step:09d}.png"
        K, per = self.train.num_classes, self.cfg.eval.grid_per_class
        if len(self.train.sample_shape) != 3:  # 2-D toys: all evaluation samples over the data
            points = self.generate(generator, self.labels).cpu()
            return save_png(scatter_plot(points, self.train.get(torch.arange(min(len(self.train), 5000)))), path)
        x = self.generate(generator, torch.arange(K).repeat_interleave(per)).cpu()
        return save_png(image_grid(to_uint8(x), rows=K), path)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)
