"""Unfinished logical backups on a real file store: who may resume one, what is listed,
what the next backup cleans up, and which staging directories are a dead process's."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.catalog.owner import lease_body, this_process
from core.errors import InputError, OperationFailed
from core.logical.attempt import (
    ABANDONED,
    STAGING_OWNER,
    STARTED,
    lease_key,
    list_unfinished,
    mark_staging,
    reap_abandoned,
    reclaim,
    staging_prefix,
    sweep_staging,
)
from core.logical.catalog import delete_logical
from core.logical.layout import LogicalLayout
from core.storage import ObjectStore, StoreConfig, open_store
from core.urls import parse_location

SERVER = "srv"
LAYOUT = LogicalLayout(SERVER)
LIVE, DEAD, DONE = "20260101T000001L", "20260101T000002L", "20260101T000003L"


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])  # a PID whose process has ended
    child.wait()
    return child.pid


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ObjectStore]:
    with open_store(parse_location(f"file://{tmp_path}/dest"), StoreConfig()) as opened:
        yield opened


def _attempt(store: ObjectStore, backup_id: str, owner: dict[str, object] | None) -> None:
    store.put_bytes(LAYOUT.dump_file(backup_id, "shop", "3001.dat.gz"), b"x" * 10)
    if owner is not None:
        store.put_bytes(lease_key(LAYOUT, backup_id), lease_body(owner))


def _keys(store: ObjectStore, backup_id: str) -> list[str]:
    return [o.key for o in store.list_objects(LAYOUT.backup_prefix(backup_id))]


@pytest.fixture
def three(store: ObjectStore) -> ObjectStore:
    """A running backup (this process), a killed one (its process gone), a finished one."""
    _attempt(store, LIVE, this_process())
    _attempt(store, DEAD, {**this_process(), "pid": _dead_pid()})
    _attempt(store, DONE, None)
    store.put_bytes(LAYOUT.manifest(DONE), b"{}")
    return store


def test_unfinished_are_listed_by_their_owners_verdict(three: ObjectStore) -> None:
    listed = {u.backup_id: u for u in list_unfinished(three, SERVER)}
    assert sorted(listed) == [LIVE, DEAD]  # the finished one is not unfinished
    assert listed[LIVE].status == STARTED and "is running" in listed[LIVE].reason
    assert listed[DEAD].status == ABANDONED and "is gone" in listed[DEAD].reason
    assert listed[DEAD].objects == 2  # the dump file and the lease


def test_a_resume_takes_over_only_a_dead_or_absent_attempt(three: ObjectStore) -> None:
    with pytest.raises(OperationFailed, match="may still be running"):
        reclaim(three, LAYOUT, LIVE)
    assert len(_keys(three, LIVE)) == 2  # left alone
    with pytest.raises(OperationFailed, match="it is finished"):
        reclaim(three, LAYOUT, DONE)
    with pytest.raises(InputError, match="not a logical backup ID"):
        reclaim(three, LAYOUT, "20260101T000002")
    reclaim(three, LAYOUT, DEAD)
    assert _keys(three, DEAD) == []
    reclaim(three, LAYOUT, "20260101T000009L")  # a cancelled one left nothing: fine


def test_the_next_backup_removes_only_abandoned_attempts(three: ObjectStore) -> None:
    assert reap_abandoned(three, SERVER) == [DEAD]
    assert _keys(three, DEAD) == []
    assert len(_keys(three, LIVE)) == 2 and len(_keys(three, DONE)) == 2


def test_staging_directories_of_dead_processes_are_swept(tmp_path: Path) -> None:
    dead = tmp_path / f"pgvault-logical-{_dead_pid()}-abcd1234"
    mine = tmp_path / f"{staging_prefix()}efgh5678"
    elsewhere = tmp_path / "pgvault-logical-9-other"  # another PID namespace's: not judged
    unmarked = tmp_path / "pgvault-logical-restore"
    for directory in (dead, mine, elsewhere, unmarked):
        (directory / "dump").mkdir(parents=True)
    for directory in (dead, mine, elsewhere):
        mark_staging(str(directory))
    owner = json.loads((dead / STAGING_OWNER).read_text())
    (dead / STAGING_OWNER).write_text(json.dumps({**owner, "pid": _dead_pid()}))
    (elsewhere / STAGING_OWNER).write_text(json.dumps({**owner, "pid_ns": "pid:[1]"}))
    assert sweep_staging(str(tmp_path)) == [str(dead)]
    assert sorted(os.listdir(tmp_path)) == sorted([mine.name, elsewhere.name, unmarked.name])


def test_force_delete_refuses_a_running_backup_and_removes_a_killed_one(
    three: ObjectStore,
) -> None:
    with pytest.raises(OperationFailed, match=r"cannot delete .* may still be running"):
        delete_logical(three, SERVER, LIVE, unfinished=True)
    assert len(_keys(three, LIVE)) == 2
    assert delete_logical(three, SERVER, DEAD, unfinished=True).objects == 2
    assert _keys(three, DEAD) == []
