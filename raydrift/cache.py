"""raydrift's on-disk cache: where trained classifiers, MAE encoders and reference statistics live, and the
file lock that lets one process build a cached artefact while the others wait and then load it."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE_ENV = "RAYDRIFT_CACHE"


def default_cache_dir() -> Path:
    """``$RAYDRIFT_CACHE``, else ``~/.cache/raydrift``."""
    return Path(os.environ.get(CACHE_ENV, "~/.cache/raydrift")).expanduser()


def cache_dir(configured: str = "") -> Path:
    """The configured cache directory (``eval.cache_dir``), or the default when it is empty."""
    return Path(configured).expanduser() if configured else default_cache_dir()


@contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the duration of the block."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
