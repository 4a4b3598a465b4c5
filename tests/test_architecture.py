"""The layer rules of README's "Layout", enforced by import-linter's contracts in pyproject.toml."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(exe)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout, proc.stdout[-2000:]


def test_no_private_ray_imports():
    """raydrift uses Ray through its public API only (no ``_internal`` or ``_private`` module, no ``_name``)."""
    offending = []
    for path in (REPO / "raydrift").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            text = line.strip()
            if text.startswith(("import ray", "from ray")) and ("_internal" in text or "._" in text or " _" in text):
                offending.append(f"{path.relative_to(REPO)}:{number}: {text}")
    assert not offending, "\n".join(offending)


def test_modules_stay_small():
    """Small, single-purpose modules: none of raydrift/ or analysis/ over 400 lines (split it by purpose)."""
    long = []
    for path in [*(REPO / "raydrift").rglob("*.py"), *(REPO / "analysis").rglob("*.py")]:
        n = len(path.read_text().splitlines())
        if n > 400:
            long.append(f"{path.relative_to(REPO)}: {n} lines")
    assert not long, "\n".join(long)
