"""W&B is optional: offline needs no key or network, online without a key falls back, disabled imports nothing."""

import subprocess
import sys
import time
import warnings

from raydrift.config import apply_overrides
from raydrift.config.presets import get_preset
from raydrift.orchestration.wandb_logger import WandbReporter, run_id
from raydrift.training.rundir import PlainReporter


def _log_a_run(tmp_path, mode):
    cfg = apply_overrides(get_preset("digits"), {"wandb.mode": mode})
    rep = WandbReporter(
        PlainReporter(tmp_path),
        cfg,
        run_dir=tmp_path,
        id=run_id("exp", "trial_0001"),
        group="exp-abc",
        name="kernel=gaussian-seed0",
    )
    for step in (1, 2, 3):
        rep.report({"step": step, "train/loss": 1.0 / step, "eval/fid_net": "lenet:digits"})
    rep.finish()
    return rep


def test_offline_without_key_writes_a_local_run(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    t0 = time.monotonic()
    _log_a_run(tmp_path, "offline")
    assert time.monotonic() - t0 < 60
    runs = list((tmp_path / "wandb").glob("offline-run-*-exp-trial_0001"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 3  # the inner reporter still gets everything


def test_online_without_a_key_falls_back_to_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _log_a_run(tmp_path, "online")
    assert any("no W&B API key" in str(w.message) for w in caught)
    assert list((tmp_path / "wandb").glob("offline-run-*"))


def test_disabled_never_imports_wandb(tmp_path):
    code = (
        "import sys; from raydrift.config import Config; from raydrift.orchestration.wandb_logger import WandbReporter;"
        "from raydrift.training.rundir import PlainReporter; import pathlib;"
        f"r = WandbReporter(PlainReporter({str(tmp_path)!r}), Config(), run_dir=pathlib.Path({str(tmp_path)!r}),"
        " id='x', group='', name='x'); r.report({'step': 1}); assert 'wandb' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
