"""Run directories on cluster storage (raydrift.orchestration.storage): what rank 0 writes reaches the
experiment's storage from any node, for a shared path and for a URI (here ``file://``, opened by pyarrow
like ``s3://``)."""

import json

import pytest

from raydrift.orchestration.storage import RunDirMirror, is_uri, write_json_files
from raydrift.training.rundir import append_record, read_history


def test_is_uri():
    assert is_uri("s3://bucket/studies") and is_uri("file:///tmp/x")
    assert not is_uri("/mnt/shared/studies") and not is_uri("runs/studies")


def test_json_files_to_a_path_and_to_a_uri(tmp_path):
    files = {"config.json": {"a": 1}, "meta.json": {"seed": 3}}
    write_json_files(tmp_path / "local" / "trial_1", files)
    write_json_files(f"file://{tmp_path}/remote/trial_1", files)
    for root in ("local", "remote"):
        for name, data in files.items():
            assert json.loads((tmp_path / root / "trial_1" / name).read_text()) == data


def test_mirror_uploads_changes_and_resumes_on_another_node(tmp_path):
    remote = tmp_path / "storage" / "exp" / "trial_1"
    uri = f"file://{remote}"

    first = RunDirMirror(uri)  # rank 0 on node A
    append_record(first.local, {"step": 10, "stage": 0})
    (first.local / "samples").mkdir()
    (first.local / "samples" / "step_000000010.png").write_bytes(b"png")
    (first.local / "wandb").mkdir()
    (first.local / "wandb" / "run.wandb").write_bytes(b"w&b keeps its own copy")
    first.sync()
    assert [r["step"] for r in read_history(remote)] == [10]
    assert (remote / "samples" / "step_000000010.png").read_bytes() == b"png"
    assert not (remote / "wandb").exists()  # W&B's files grow every step: not uploaded each time

    (remote / "samples" / "step_000000010.png").write_bytes(b"unchanged locally: not sent again")
    append_record(first.local, {"step": 20, "stage": 0})
    first.close()
    assert [r["step"] for r in read_history(remote)] == [10, 20]
    assert (remote / "samples" / "step_000000010.png").read_bytes() == b"unchanged locally: not sent again"
    assert (remote / "wandb" / "run.wandb").read_bytes() == b"w&b keeps its own copy"  # once, at the end
    assert not first.local.exists()

    second = RunDirMirror(uri)  # the trial resumes on node B: its history continues, not restarts
    assert second.local != first.local
    append_record(second.local, {"step": 15, "stage": 1})
    second.close()
    assert [(r["step"], r["stage"]) for r in read_history(remote)] == [(10, 0), (20, 0), (15, 1)]


def test_a_failed_upload_is_retried_not_fatal(tmp_path):
    blocker = tmp_path / "storage"
    blocker.write_text("a file where the run directory's parent should be")
    mirror = RunDirMirror(f"file://{blocker}/trial_1")
    append_record(mirror.local, {"step": 5, "stage": 0})
    with pytest.warns(UserWarning, match="will retry"):
        mirror.sync()
    blocker.unlink()
    mirror.close()
    assert [r["step"] for r in read_history(blocker / "trial_1")] == [5]
