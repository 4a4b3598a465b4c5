"""Errors a user can fix: the command line prints their message as one line (no traceback) and exits with
their ``exit_code`` (2: the command was used wrongly, 1: it was used rightly and something it needs is wrong).

Every layer raises these (or subclasses of them) for a problem with the user's input, files or machine;
only ``raydrift.cli`` turns them into output.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; the message says what was wrong and what to do."""

    exit_code = 1


class UsageError(UserError):
    """A bad argument or option value (exit status 2, like click's own usage errors)."""

    exit_code = 2


def check_name(name: str, what: str = "run name") -> str:
    """``name`` if it is a plain directory name (a run or experiment is ``<parent>/<name>``), else a
    :class:`UsageError`: no ``/`` or ``\\``, not ``.`` or ``..``, not empty, no leading ``-`` or control characters,
    so the directory it names (and ``--overwrite`` deletes) is always a child of the parent directory."""
    bad = (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or name.startswith("-")
        or any(ord(c) < 32 for c in name)
        or len(name) > 200
    )
    if bad:
        raise UsageError(
            f"{what} {name!r} is not a plain name: use letters, digits, '-', '_', '.' (no '/', no '..', not an "
            "absolute path); to write somewhere else, set the parent directory instead (--set output_dir=DIR for "
            "train, --storage DIR for tune)"
        )
    return name
