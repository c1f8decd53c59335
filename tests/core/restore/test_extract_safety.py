"""Restoring hostile or damaged archives: refused with a clear error, nothing left behind.

The backups are written by hand into a local catalog (tests.support.fakebackup) and
restored through run_restore, as `pgvault --batch restore` does.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import InputError, IntegrityError, OperationFailed
from core.restore import RestoreRequest, RestoreResult, run_restore
from core.restore.extract import UnsafeArchive
from core.urls import parse_location
from tests.support.cli import PGVAULT
from tests.support.fakebackup import FakeBackup, Member, minimal_pgdata, tar_bytes
from tests.support.postgres import world_dir

BACKUP_ID = "20260101T000000"


@pytest.fixture
def place() -> Iterator[Path]:
    """A catalog root and a restore target under one directory the postgres user reaches."""
    base = Path(world_dir("pgvault-fake-"))
    (base / "catalog").mkdir()
    yield base
    import shutil

    shutil.rmtree(base, ignore_errors=True)


def restore(place: Path, backup: FakeBackup, **overrides: object) -> RestoreResult:
    backup.write(str(place / "catalog"), "pg")
    request = RestoreRequest(
        location=parse_location(f"file://{place / 'catalog'}"),
        server="pg",
        backup=backup.backup_id,
        recovery_dir=str(place / "restored" / "data"),
        pgvault_command=PGVAULT,
        sync=False,
        # A hand-written catalog holds no WAL: what these tests check is the extraction.
        accept_wal_gap=True,
    )
    from dataclasses import replace

    return run_restore(replace(request, **overrides))  # type: ignore[arg-type]


def left_behind(place: Path) -> list[str]:
    """Everything under place but the catalog."""
    found = []
    for root, dirs, files in os.walk(place):
        if Path(root) == place:
            dirs.remove("catalog")
        found += [os.path.relpath(os.path.join(root, n), place) for n in dirs + files]
    return found


def test_a_minimal_backup_restores_with_its_recovery_settings(place: Path) -> None:
    result = restore(place, FakeBackup(BACKUP_ID))
    data = place / "restored" / "data"
    assert (data / "PG_VERSION").read_text() == "15\n"
    assert (data / "global" / "pg_control").stat().st_size == 8192
    assert not (data / "global" / "pg_control.pgvault-restoring").exists()
    assert (data / "recovery.signal").exists()
    assert sorted(os.listdir(data / "pg_wal")) == ["archive_status"]
    conf = (data / "postgresql.auto.conf").read_text()
    assert "restore_command = '" in conf and "--abort-on-error" in conf
    assert "archive_command = 'false'" in conf  # held: it never writes into the archive
    assert any("no pgvault.json" in line for line in result.not_verified)
    assert result.credentials_file is None  # a local directory needs none
    assert oct(data.stat().st_mode & 0o777) == "0o700"


@pytest.mark.parametrize(
    "member, message",
    [
        (Member("../evil", b"x"), "escapes the directory"),
        (Member("base/../../evil", b"x"), "escapes the directory"),
        (Member("/tmp/pgvault-evil-absolute", b"x"), "absolute name"),
        (Member("dev/tty", type=tarfile.CHRTYPE), "device file or FIFO"),
        (Member("fifo", type=tarfile.FIFOTYPE), "device file or FIFO"),
        (Member("pg_tblspc/16999", type=tarfile.SYMTYPE, linkname="/etc"), "names no tablespace"),
        (Member("hard", type=tarfile.LNKTYPE, linkname="../outside"), "escapes the directory"),
        (Member("hard", type=tarfile.LNKTYPE, linkname="never-seen"), "does not name a file"),
    ],
)
def test_hostile_members_are_refused_and_nothing_is_left(
    place: Path, member: Member, message: str
) -> None:
    members = minimal_pgdata()
    members.insert(2, member)
    with pytest.raises(UnsafeArchive, match=message) as caught:
        restore(place, FakeBackup(BACKUP_ID, members=members))
    assert f"pg/base/{BACKUP_ID}/data.tar" in str(caught.value)
    assert left_behind(place) == []
    assert not os.path.exists("/tmp/pgvault-evil-absolute")
    assert not (place / "evil").exists()


def test_links_outside_pg_tblspc_are_left_out_and_never_followed(place: Path) -> None:
    members = minimal_pgdata()
    members[2:2] = [
        Member("conf", type=tarfile.SYMTYPE, linkname=str(place)),
        Member("conf/evil", b"written inside the restore, not through the link"),
        Member("PG_VERSION", b"the later copy wins\n"),
        Member("copy", type=tarfile.LNKTYPE, linkname="PG_VERSION"),
        Member("pg_wal/000000010000000000000001", b"stale WAL"),
        Member("standby.signal", b""),
        Member("postmaster.pid", b"1234\n"),
    ]
    result = restore(place, FakeBackup(BACKUP_ID, members=members))
    data = place / "restored" / "data"
    assert not (data / "conf").is_symlink() and (data / "conf" / "evil").is_file()
    assert not (place / "evil").exists()
    assert (data / "PG_VERSION").read_text() == "the later copy wins\n"
    assert os.stat(data / "copy").st_ino == os.stat(data / "PG_VERSION").st_ino
    assert sorted(os.listdir(data / "pg_wal")) == ["archive_status"]
    assert not (data / "standby.signal").exists() and not (data / "postmaster.pid").exists()
    assert result.files >= 5


def test_truncated_archives_are_refused(place: Path) -> None:
    raw = tar_bytes(minimal_pgdata())
    for cut, message in ((len(raw) // 2, "ends inside a member"), (9216, "truncated")):
        with pytest.raises(IntegrityError, match=message):
            restore(place, FakeBackup(BACKUP_ID, archives={"data.tar": raw[:cut]}))
        assert left_behind(place) == []
    # Cut exactly after the last member: every file is whole, the end marker is missing.
    import io

    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        last = tar.getmembers()[-1]
    boundary = last.offset_data + -(-last.size // 512) * 512
    with pytest.raises(IntegrityError, match="no end-of-archive marker"):
        restore(place, FakeBackup(BACKUP_ID, archives={"data.tar": raw[:boundary]}))
    assert left_behind(place) == []


def test_a_failed_extraction_leaves_no_file_open(place: Path) -> None:
    """A restore that fails mid-file (a damaged archive here; a cancel or a full disk alike)
    closed the file it was writing only at the member's end, which never came: each failed
    restore kept a descriptor of a deleted file for the life of the process (a console,
    the protection agent, a test worker)."""
    raw = tar_bytes(minimal_pgdata())
    cut = FakeBackup(BACKUP_ID, archives={"data.tar": raw[: len(raw) // 2]})

    def descriptors() -> list[str]:
        targets = []
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):  # the listing's own, closed by now
                targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        return targets

    before = len(descriptors())
    for _ in range(5):
        with pytest.raises(IntegrityError, match="ends inside a member"):
            restore(place, cut)
    held = [target for target in descriptors() if str(place) in target]
    assert held == [] and len(descriptors()) <= before + 1, held


def test_a_backup_without_pg_control_is_not_restorable(place: Path) -> None:
    members = [m for m in minimal_pgdata() if m.name != "global/pg_control"]
    with pytest.raises(IntegrityError, match="no global/pg_control"):
        restore(place, FakeBackup(BACKUP_ID, members=members))
    assert left_behind(place) == []


def test_refusals_before_anything_is_written(place: Path) -> None:
    target = place / "restored" / "data"
    target.mkdir(parents=True)
    (target / "x").write_text("keep")
    with pytest.raises(InputError, match="is not empty"):
        restore(place, FakeBackup(BACKUP_ID))
    assert (target / "x").read_text() == "keep"
    (target / "x").unlink()
    with pytest.raises(InputError, match="outside the data directory"):
        restore(place, FakeBackup(BACKUP_ID), wal_restore_dir=str(target / "inside"))
    with pytest.raises(InputError, match="has no tablespace ts9"):
        restore(place, FakeBackup(BACKUP_ID), tablespaces=(("ts9", str(place / "t")),))
    failed = FakeBackup("20260102T000000", status="FAILED")
    with pytest.raises(OperationFailed, match="is FAILED"):
        restore(place, failed)
    assert os.listdir(target) == []


def test_a_pgvault_the_data_directory_owner_cannot_run_is_refused(place: Path) -> None:
    hidden = place / "hidden"
    hidden.mkdir(mode=0o700)
    fake = hidden / "pgvault"
    # As root the owner (postgres) cannot even reach it; otherwise it is no pgvault at all.
    fake.write_text("#!/bin/sh\necho not pgvault\n")
    fake.chmod(0o755)
    with pytest.raises(InputError, match="--pgvault-command"):
        restore(place, FakeBackup(BACKUP_ID), pgvault_command=str(fake))
    assert left_behind(place) == ["hidden", "hidden/pgvault"]
