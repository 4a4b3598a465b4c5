"""Run directories on storage every node can reach: a shared path (NFS, or one machine) or a URI.

On a cluster, rank 0 of a trial may run on any node, so its files (``metrics.jsonl``, ``config.json``,
``meta.json``, sample grids) go straight to the experiment's storage, never to a node-local directory.
A shared path is written in place. A URI (``s3://``, ``gs://``, ``file://``: anything ``pyarrow.fs``
opens, as for Ray Tune's ``storage_path``) cannot be appended to, so rank 0 writes a local copy and
:class:`RunDirMirror` uploads every file that changed after each report.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from raydrift.errors import UserError
from raydrift.training.rundir import MARKER_FILE, METRICS_FILE, marker, write_json

LOCAL_UNTIL_CLOSE = ("wandb",)  # W&B's own directory grows with every step: uploaded once, at the end


def is_uri(path: str | os.PathLike) -> bool:
    return "://" in str(path)


def join(base: str | os.PathLike, name: str) -> str:
    """``base/name`` for a path or a URI (a URI keeps its scheme and slashes)."""
    return f"{str(base).rstrip('/')}/{name}" if is_uri(base) else str(Path(base) / name)


def _open(uri: str):
    from pyarrow import fs

    return fs.FileSystem.from_uri(uri)


def write_json_files(run_dir: str | os.PathLike, files: dict[str, dict[str, Any]]) -> None:
    """Write ``{name: data}`` as JSON files into ``run_dir`` (a path or a URI)."""
    if not is_uri(run_dir):
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            write_json(Path(run_dir) / name, data)
        return
    filesystem, path = _open(str(run_dir))
    filesystem.create_dir(path, recursive=True)
    for name, data in files.items():
        with filesystem.open_output_stream(f"{path}/{name}") as f:
            f.write(json.dumps(data, indent=2, sort_keys=True).encode())


def write_text(run_dir: str | os.PathLike, name: str, text: str | bytes) -> None:
    """Write ``run_dir/name`` (a path or a URI); on a path atomically (a reader sees the old or the new file)."""
    data = text.encode() if isinstance(text, str) else text
    if not is_uri(run_dir):
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        tmp = Path(run_dir) / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(Path(run_dir) / name)
        return
    filesystem, path = _open(str(run_dir))
    filesystem.create_dir(path, recursive=True)
    with filesystem.open_output_stream(f"{path}/{name}") as f:
        f.write(data)


def read_bytes(run_dir: str | os.PathLike, name: str) -> bytes | None:
    """The bytes of ``run_dir/name`` (a path or a URI), or None if it does not exist."""
    text = read_text(run_dir, name, binary=True)
    return text if isinstance(text, bytes) else None


def read_text(run_dir: str | os.PathLike, name: str, binary: bool = False) -> str | bytes | None:
    """The text (``binary``: bytes) of ``run_dir/name`` (a path or a URI), or None if it does not exist."""
    if not is_uri(run_dir):
        path = Path(run_dir) / name
        if not path.is_file():
            return None
        return path.read_bytes() if binary else path.read_text()
    from pyarrow import fs

    filesystem, path = _open(str(run_dir))
    if filesystem.get_file_info(f"{path}/{name}").type != fs.FileType.File:
        return None
    with filesystem.open_input_stream(f"{path}/{name}") as f:
        data = f.read()
        return data if binary else data.decode()


def exists(path: str | os.PathLike) -> bool:
    """Whether a path or a URI exists (file or directory)."""
    if not is_uri(path):
        return Path(path).exists()
    from pyarrow import fs

    filesystem, inner = _open(str(path))
    return filesystem.get_file_info(inner).type != fs.FileType.NotFound


def mark_created(path: str | os.PathLike, kind: str) -> None:
    """Create the directory ``path`` (a path or a URI) if needed and mark it as made by raydrift."""
    write_json_files(path, {MARKER_FILE: marker(kind)})


def remove_created(path: str | os.PathLike, what: str, hint: str) -> None:
    """Delete the directory tree ``path`` (a path or a URI), only if raydrift created it (its marker file is
    there); otherwise raise :class:`UserError` and delete nothing. ``hint`` says how to avoid the clash."""
    if not is_uri(path) and Path(path).is_symlink():
        raise UserError(f"{path} is a symbolic link: not deleting what it points to; remove it yourself or {hint}")
    if read_text(path, MARKER_FILE) is None:
        raise UserError(
            f"{what} {path} was not created by raydrift (no {MARKER_FILE} marker file in it), so --overwrite "
            f"does not delete it; delete it yourself if you mean to, or {hint}"
        )
    if not is_uri(path):
        shutil.rmtree(path)
        return
    filesystem, inner = _open(str(path))
    filesystem.delete_dir(inner)


class RunDirMirror:
    """A local copy of the run directory ``uri`` whose changed files :meth:`sync` uploads.

    The remote ``metrics.jsonl`` is fetched first, so a run resumed on another node appends to its
    history instead of replacing it. Files under ``wandb/`` are uploaded by :meth:`close` only. A failed
    upload is retried at the next sync instead of stopping training.
    """

    def __init__(self, uri: str):
        from pyarrow import fs

        self.fs, self.path = _open(uri)
        self.local = Path(tempfile.mkdtemp(prefix="raydrift-run-"))
        self._sent: dict[str, tuple[int, int]] = {}
        remote = f"{self.path}/{METRICS_FILE}"
        if self.fs.get_file_info(remote).type == fs.FileType.File:
            with self.fs.open_input_stream(remote) as src, open(self.local / METRICS_FILE, "wb") as dst:
                shutil.copyfileobj(src, dst)
            self._sent[METRICS_FILE] = self._stamp(self.local / METRICS_FILE)

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int]:
        st = path.stat()
        return st.st_size, st.st_mtime_ns

    def sync(self, *, final: bool = False) -> None:
        """Upload the files that are new or changed since the last sync (``final``: W&B's too)."""
        for path in sorted(self.local.rglob("*")):
            rel = path.relative_to(self.local)
            if not path.is_file() or path.name.endswith(".tmp") or (rel.parts[0] in LOCAL_UNTIL_CLOSE and not final):
                continue
            stamp = self._stamp(path)
            if self._sent.get(rel.as_posix()) == stamp:
                continue
            target = f"{self.path}/{rel.as_posix()}"
            try:
                self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
                with open(path, "rb") as src, self.fs.open_output_stream(target) as dst:
                    shutil.copyfileobj(src, dst)
            except OSError as err:  # storage unreachable for a moment: the next sync tries again
                warnings.warn(f"upload of {rel} to {target} failed ({err}); will retry", stacklevel=2)
                continue
            self._sent[rel.as_posix()] = stamp

    def close(self) -> None:
        self.sync(final=True)
        shutil.rmtree(self.local, ignore_errors=True)
