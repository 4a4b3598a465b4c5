"""The terminal during a study: raydrift's own lines on it, everything Ray prints in a log file.

Ray writes from many places: its Python loggers, the lines it forwards from every worker, and C++ code in
the driver that writes straight to file descriptor 2. Only a file-descriptor redirection catches all of
them, so :func:`ray_output_to` points descriptors 1 and 2 at the log file for the length of the block and
hands out a function that still writes to the terminal (and to the log, so the file reads in order).
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click


@contextmanager
def ray_output_to(log_path: Path | None) -> Iterator[Callable[[str], None]]:
    """Inside the block, stdout and stderr (file descriptors 1 and 2) go to ``log_path``; the yielded function
    prints a line on the terminal. ``log_path=None``, or no real terminal streams (click's test runner),
    leaves the output alone and the function is ``click.echo``."""
    try:
        fds = (sys.stdout.fileno(), sys.stderr.fileno())
    except (AttributeError, io.UnsupportedOperation):
        fds = None
    if log_path is None or fds != (1, 2):
        yield click.echo
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    terminal = os.fdopen(os.dup(1), "w", buffering=1)
    with open(log_path, "a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)

        def say(line: str) -> None:
            terminal.write(line + "\n")
            terminal.flush()
            log.write(line + "\n")

        try:
            yield say
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            terminal.close()
