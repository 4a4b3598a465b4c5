"""TF-Inception feature net: input conversion, the missing-weights error, and real features where the
weights file named by RAYDRIFT_INCEPTION_WEIGHTS exists (make it with tools/inception_weights/get.sh)."""

import os
import urllib.error

import pytest
import torch
import torch_fidelity.feature_extractor_inceptionv3 as fe

from raydrift.evaluation.inception import ENV_WEIGHTS, InceptionFeatureNet, InceptionWeightsError, to_uint8_rgb

WEIGHTS = os.environ.get(ENV_WEIGHTS, "")


def test_to_uint8_rgb_rounds_and_replicates_gray():
    x = torch.tensor([-1.0, -0.999, 0.0, 0.5, 1.0, 1.5]).reshape(1, 1, 1, 6)
    u8 = to_uint8_rgb(x)
    assert u8.dtype == torch.uint8 and u8.shape == (1, 3, 1, 6)
    assert u8[0, :, 0].tolist() == [[0, 0, 128, 191, 255, 255]] * 3
    rgb = torch.rand(2, 3, 4, 4) * 2 - 1
    assert torch.equal(to_uint8_rgb(rgb), ((rgb + 1) * 127.5).round().to(torch.uint8))


def test_missing_weights_file_explains_how_to_get_them(tmp_path):
    with pytest.raises(InceptionWeightsError, match="get.sh"):
        InceptionFeatureNet(tmp_path / "missing.pth")


@pytest.mark.skipif(not os.path.isfile(WEIGHTS), reason=f"${ENV_WEIGHTS} is not a weights file")
def test_features_are_2048d_and_deterministic():
    net = InceptionFeatureNet(WEIGHTS)
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    f = net.features(x)
    assert net.id == "inception-tf:pool3" and net.dim == 2048
    assert f.shape == (8, 2048) and f.dtype == torch.float32 and bool((f >= 0).all())  # post-ReLU pool
    torch.testing.assert_close(net.features(x, batch_size=3), f, rtol=1e-5, atol=1e-6)
    assert torch.equal(net.features(x), f)
    assert not net.has_logits  # the converted weights have a zero fc layer
    with pytest.raises(ValueError):
        net.logits(x)


def test_failed_download_explains_how_to_get_weights(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.delenv(ENV_WEIGHTS, raising=False)
    monkeypatch.setattr(fe, "load_state_dict_from_url", offline)
    with pytest.raises(InceptionWeightsError, match="get.sh"):
        InceptionFeatureNet()


def test_a_weights_file_that_is_not_one_is_refused_without_unpickling_it(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file at all")
    with pytest.raises(InceptionWeightsError, match="is not a TF-Inception weights file"):
        InceptionFeatureNet(garbage)
    ran = tmp_path / "ran"
    payload = tmp_path / "payload.pth"
    torch.save({"w": _Payload(str(ran))}, payload)
    with pytest.raises(InceptionWeightsError, match="is not a TF-Inception weights file"):
        InceptionFeatureNet(payload)
    assert not ran.exists()  # torch-fidelity unpickles in full: the file never reached it


class _Payload:
    """Unpickling this opens (creates) a file: stands for any code a crafted pickle runs."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))
