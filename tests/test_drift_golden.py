"""The default drift loss reproduces the authors' code (golden vectors shipped in tests/data; see its README)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from raydrift.method.drift import drift_loss

GOLDEN = Path(__file__).resolve().parent / "data" / "drift_official_public.npz"
RTOL = 1e-4


def _cases():
    z = np.load(GOLDEN)
    meta = json.loads(str(z["meta"]))
    return [({k.split("/", 1)[1]: z[k] for k in z.files if k.startswith(f"case{i}/")}, m) for i, m in enumerate(meta)]


CASES = _cases()


@pytest.mark.parametrize("case", range(len(CASES)))
def test_matches_official(case: int, drift_compile: bool):
    arrays, meta = CASES[case]
    t = {k: torch.from_numpy(v) for k, v in arrays.items()}
    gen = t["gen"].clone().requires_grad_(True)
    temperatures = [float(r) for r in meta["R_list"]]
    loss, info = drift_loss(
        gen, t["pos"], t["neg"], weight_neg=t["weight_neg"], temperatures=temperatures, compile=drift_compile
    )
    loss.sum().backward()

    assert loss.shape == t["loss"].shape
    assert torch.allclose(loss, t["loss"], rtol=RTOL, atol=0)
    assert torch.allclose(info["scale"], t["scale"], rtol=RTOL, atol=0)
    for j, r in enumerate(meta["R_list"]):
        assert torch.allclose(info["force_ms"][j], t[f"loss_R_{r}"], rtol=RTOL, atol=0), r
    grad_err = (gen.grad - t["grad_gen"]).abs().max()
    assert grad_err <= RTOL * t["grad_gen"].abs().max()
