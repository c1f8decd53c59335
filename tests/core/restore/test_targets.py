"""Recovery targets: validation, and which backup a restore starts from (barman's rules)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from core.catalog.reader import Catalog
from core.errors import InputError, OperationFailed
from core.restore.targets import choose_backup, make_target
from core.storage import open_store
from core.urls import parse_location
from tests.support.fakebackup import FakeBackup


def at(hour: int) -> datetime:
    return datetime.fromisoformat(f"2026-01-01T{hour:02d}:00:00+00:00")


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    root = tmp_path / "catalog"
    for backup in (
        FakeBackup("20260101T090000", end_time=at(10), end_xlog="0/3000100", timeline=1),
        FakeBackup("20260101T100000", status="FAILED", end_time=at(11), end_xlog="0/4000100"),
        FakeBackup("20260101T110000", end_time=at(12), end_xlog="0/5000100", timeline=2),
        FakeBackup("20260101T120000", status="STARTED", end_time=at(13)),
    ):
        backup.write(str(root), "pg")
    os.makedirs(root / "pg" / "wals" / "0000000200000000")
    os.makedirs(root / "pg" / "wals" / "0000000100000000")
    (root / "pg" / "wals" / "00000002.history").write_text("1\t0/4800000\tx\n")
    with open_store(parse_location(f"file://{root}")) as store:
        yield Catalog(store, "pg")


def chosen(catalog: Catalog, reference: str, **target: object) -> str:
    return choose_backup(catalog, reference, make_target(**target)).backup_id  # type: ignore[arg-type]


def test_latest_and_auto_pick_the_newest_done_backup_before_the_target(catalog: Catalog) -> None:
    assert chosen(catalog, "latest") == chosen(catalog, "auto") == "20260101T110000"
    assert chosen(catalog, "latest", time="2026-01-01 11:30:00+00:00") == "20260101T090000"
    assert chosen(catalog, "auto", time="2026-01-01 12:00:00+00:00") == "20260101T110000"
    assert chosen(catalog, "auto", time="2026-01-01T13:00:00+01:00") == "20260101T110000"
    assert chosen(catalog, "latest", lsn="0/4FFFFFF") == "20260101T090000"
    assert chosen(catalog, "latest", lsn="0/5000100") == "20260101T110000"
    assert chosen(catalog, "auto", timeline="1") == "20260101T090000"
    assert chosen(catalog, "latest", xid="1234") == "20260101T110000"
    with pytest.raises(OperationFailed, match="ended before 2026-01-01 09:00:00"):
        chosen(catalog, "auto", time="2026-01-01 09:00:00+00:00")
    assert chosen(catalog, "auto", timeline="latest") == "20260101T110000"
    assert chosen(catalog, "latest", timeline="2") == "20260101T110000"
    with pytest.raises(OperationFailed, match="on the history of timeline 1 "):
        chosen(catalog, "latest", timeline="1", time="2026-01-01 09:00:00+00:00")
    with pytest.raises(InputError, match="current needs a named backup"):
        chosen(catalog, "auto", timeline="current")


def test_a_named_backup_must_be_done_and_end_before_the_target(catalog: Catalog) -> None:
    assert chosen(catalog, "oldest") == "20260101T090000"
    assert chosen(catalog, "20260101T090000", time="2026-01-01 10:00:00+00:00") == (
        "20260101T090000"
    )
    with pytest.raises(OperationFailed, match="after the recovery target"):
        chosen(catalog, "20260101T110000", time="2026-01-01 11:30:00+00:00")
    with pytest.raises(OperationFailed, match="after the recovery target"):
        chosen(catalog, "20260101T110000", lsn="0/4000000")
    with pytest.raises(OperationFailed, match="is FAILED"):
        chosen(catalog, "last-failed")
    with pytest.raises(OperationFailed, match="is STARTED"):
        chosen(catalog, "20260101T120000")
    with pytest.raises(InputError, match="not on the history of timeline 1, which"):
        chosen(catalog, "20260101T110000", timeline="1")


def test_only_backups_on_the_followed_timelines_history_are_chosen(tmp_path: Path) -> None:
    # Timeline 2 left 1 at 0/4800000 and 1 went on: a backup of 1 after the fork is not on
    # 2's history, which recovery follows by default (PostgreSQL 12+: latest).
    root = tmp_path / "catalog"
    for backup in (
        FakeBackup("20260101T090000", end_time=at(10), end_xlog="0/3000100", timeline=1),
        FakeBackup("20260101T110000", end_time=at(12), end_xlog="0/5000100", timeline=2),
        FakeBackup("20260101T130000", end_time=at(14), end_xlog="0/6000100", timeline=1),
    ):
        backup.write(str(root), "pg")
    os.makedirs(root / "pg" / "wals")
    (root / "pg" / "wals" / "00000002.history").write_text("1\t0/4800000\tx\n")
    with open_store(parse_location(f"file://{root}")) as store:
        catalog = Catalog(store, "pg")
        assert chosen(catalog, "latest") == chosen(catalog, "auto") == "20260101T110000"
        assert chosen(catalog, "latest", timeline="latest") == "20260101T110000"
        assert chosen(catalog, "latest", lsn="0/4FFFFFF") == "20260101T090000"
        assert chosen(catalog, "latest", timeline="1") == "20260101T130000"
        assert chosen(catalog, "latest", timeline="current") == "20260101T130000"
        assert chosen(catalog, "20260101T090000", timeline="2") == "20260101T090000"
        assert chosen(catalog, "20260101T130000", timeline="current") == "20260101T130000"
        with pytest.raises(InputError) as refused:
            chosen(catalog, "20260101T130000")
        message = str(refused.value)
        assert "backup 20260101T130000 (timeline 1," in message
        assert "not on the history of timeline 2, which recovery follows" in message
        with pytest.raises(InputError, match="--target-tli 2"):
            chosen(catalog, "20260101T130000", timeline="2")
        # Timeline 3 left 2 before its backup ended: none is on 3's history but the first.
        (root / "pg" / "wals" / "00000003.history").write_text("1\t0/4800000\tx\n2\t0/5000000\tx\n")
        assert chosen(catalog, "latest") == "20260101T090000"
        with pytest.raises(OperationFailed, match="on the history of timeline 3 "):
            chosen(catalog, "latest", timeline="3", lsn="0/2000000")
        # A history file that cannot be read leaves the judgement to PostgreSQL.
        (root / "pg" / "wals" / "00000003.history").write_bytes(b"\xff\xfe")
        assert chosen(catalog, "latest") == "20260101T130000"


def test_targets_are_validated() -> None:
    with pytest.raises(InputError, match="only one recovery target"):
        make_target(time="2026-01-01 10:00:00+00", name="x")
    with pytest.raises(InputError, match="needs a recovery target"):
        make_target(action="promote")
    with pytest.raises(InputError, match="--target-exclusive applies"):
        make_target(name="x", exclusive=True)
    with pytest.raises(InputError, match="invalid target time"):
        make_target(time="yesterday")
    with pytest.raises(InputError, match="invalid LSN"):
        make_target(lsn="12345")
    with pytest.raises(InputError, match="invalid target transaction"):
        make_target(xid="abc")
    with pytest.raises(InputError, match="restore point name"):
        make_target(name="n" * 64)
    with pytest.raises(InputError, match="invalid target timeline"):
        make_target(timeline="0")
    assert make_target(timeline="0x1A").timeline == "26"
    assert make_target(lsn="0/0300ABC").lsn == "0/300ABC"
    target = make_target(time="2026-01-01T10:00:00Z", exclusive=True)
    assert target.time == "2026-01-01 10:00:00+00:00" and target.effective_action == "pause"
    naive = make_target(time="2026-01-01 10:00:00")
    assert naive.time is not None and datetime.fromisoformat(naive.time).tzinfo is not None
    assert make_target().effective_action is None
