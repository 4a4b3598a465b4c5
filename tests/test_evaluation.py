"""The evaluator's yardsticks on the embedded digits with the real (cached) LeNet feature net."""

from raydrift.config import apply_overrides
from raydrift.config.presets import get_preset
from raydrift.data.datasets import load_split
from raydrift.data.images import to_float, to_uint8
from raydrift.evaluation.evaluator import Evaluator
from raydrift.evaluation.metrics import FeatureStats, stats_to_fid


def test_yardsticks_class_mean_and_real_subset(tmp_path):
    cfg = apply_overrides(get_preset("digits"), {"eval.num_samples": 200, "eval.cache_dir": str(tmp_path)})
    train = load_split(cfg.data, "train")
    ev = Evaluator(cfg, train, "cpu", None)
    y = ev.yardsticks
    # the held-out split (355 digits) is cut to as many real images as generated ones
    assert len(ev.test) == 355 and y["eval/fid_real_n"] == 200
    # the class-mean FID equals the slow way: 200 images, each its class's mean (as a PNG holds it), through the net
    means = to_float(to_uint8(train.class_means()))[ev.labels]
    slow = stats_to_fid(FeatureStats().update(ev.net.features(means)), ev.ref_stats)
    assert abs(y["eval/fid_classmean"] - slow) <= 1e-6 * max(1.0, slow)
    # a fixed subset: the same yardstick every time, and real digits score far below class means
    again = Evaluator(cfg, train, "cpu", None).yardsticks
    assert again["eval/fid_real"] == y["eval/fid_real"] < 0.2 * y["eval/fid_classmean"]


def test_fid_of_samples_equals_fid_of_their_saved_pngs(tmp_path):
    """What is scored is what is shown: samples clamped and rounded as PNGs hold them, before every metric."""
    import numpy as np
    import torch
    from PIL import Image

    from raydrift.nets.generators import build_generator

    cfg = apply_overrides(get_preset("digits"), {"eval.num_samples": 200, "eval.cache_dir": str(tmp_path)})
    train = load_split(cfg.data, "train")
    ev = Evaluator(cfg, train, "cpu", tmp_path / "samples")
    torch.manual_seed(0)
    generator = build_generator(cfg.model, train.sample_shape, train.num_classes)
    with torch.no_grad():  # an untrained generator whose outputs leave [-1, 1]: clamping matters here
        torch.nn.init.normal_(generator.head.weight, std=0.5)
    metrics = ev.evaluate(generator, step=0)
    raw = ev.generate(generator, ev.labels)
    assert 0 < metrics["eval/clamped_frac"] == (raw.abs() > 1).float().mean().item()

    # Save every sample as an 8-bit PNG, read the files back, score them with the same net and statistics.
    pixels = ((raw * 127.5 + 128).clamp(0, 255).to(torch.uint8)).numpy()
    for i, img in enumerate(pixels):
        Image.fromarray(img[0], mode="L").save(tmp_path / f"{i}.png")
    loaded = np.stack([np.asarray(Image.open(tmp_path / f"{i}.png"))[None] for i in range(len(pixels))])
    from_pngs = ev.score(torch.from_numpy(loaded))
    assert from_pngs["eval/fid"] == metrics["eval/fid"]
    assert from_pngs["eval/diversity"] == metrics["eval/diversity"] and from_pngs["eval/is"] == metrics["eval/is"]
    # and the raw values would have scored differently (the bug this guards against)
    unclamped = stats_to_fid(FeatureStats().update(ev.net.features(raw)), ev.ref_stats)
    assert unclamped != metrics["eval/fid"]
    grid = np.asarray(Image.open(metrics["eval/grid"]))
    assert grid.dtype == np.uint8 and grid.ndim == 2
