"""The evaluator's yardsticks on the embedded digits with the real (cached) LeNet feature net."""

from raydrift.config import apply_overrides
from raydrift.config.presets import get_preset
from raydrift.data.datasets import load_split
from raydrift.evaluation.evaluator import Evaluator
from raydrift.evaluation.metrics import FeatureStats, stats_to_fid


def test_yardsticks_class_mean_and_real_subset(tmp_path):
    cfg = apply_overrides(get_preset("digits"), {"eval.num_samples": 200, "eval.cache_dir": str(tmp_path)})
    train = load_split(cfg.data, "train")
    ev = Evaluator(cfg, train, "cpu", None)
    y = ev.yardsticks
    # the held-out split (355 digits) is cut to as many real images as generated ones
    assert len(ev.test) == 355 and y["eval/fid_real_n"] == 200
    # the class-mean FID equals the slow way: 200 images, each its class's mean, through the net
    means = train.class_means()[ev.labels]
    slow = stats_to_fid(FeatureStats().update(ev.net.features(means)), ev.ref_stats)
    assert abs(y["eval/fid_classmean"] - slow) <= 1e-6 * max(1.0, slow)
    # a fixed subset: the same yardstick every time, and real digits score far below class means
    again = Evaluator(cfg, train, "cpu", None).yardsticks
    assert again["eval/fid_real"] == y["eval/fid_real"] < 0.2 * y["eval/fid_classmean"]
