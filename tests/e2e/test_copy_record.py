"""The source's copies record follows the source: deletions drop entries, --refresh rechecks.

A synthetic catalog (three physical backups, one logical) in a local directory is copied to
moto's S3. Deleting a backup from the source (backup-delete -b, then retention) drops it from
`pgvault.copies.json`, so backup-list never claims copies of a backup that is gone; a logical
backup's deletion does the same. `copy --refresh` then checks each recorded copy at its
target: an object deleted there makes the copy incomplete and its entry goes, an unreachable
target keeps its entries and exits 2, and --refresh with --to, backup IDs or --all is bad
input (exit 3).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable

from core.catalog.copies import drop_copies, read_copies, record_copy
from core.catalog.layout import ServerLayout
from tests.support.catalog import put_backup, put_wal
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.emulators import free_port

SERVER = "pg1"
LAYOUT = ServerLayout(SERVER)
WAL = [f"0000000100000000000000{n:02X}" for n in range(1, 8)]
B1, B2, B3 = "20260101T000000", "20260102T000000", "20260103T000000"
LOGICAL = "20260104T000000L"


def _s3_url(dest: TestDestination) -> str:
    return f"{dest.url}?AWS_ENDPOINT={dest.config.endpoint_url}"


def _source(dest: TestDestination) -> None:
    put_backup(dest, B1, begin=WAL[0], end=WAL[1])
    put_backup(dest, B2, begin=WAL[2], end=WAL[3])
    put_backup(dest, B3, begin=WAL[4], end=WAL[5])
    put_wal(dest, WAL)
    with dest.store() as store:
        store.put_bytes(f"{SERVER}/logical/{LOGICAL}/db/app/toc.dat", b"toc")
        store.put_bytes(f"{SERVER}/logical/{LOGICAL}/logical.json", b"{}")


def _recorded(dest: TestDestination) -> dict[str, tuple[str, ...]]:
    with dest.store() as store:
        return read_copies(store, SERVER)


def _copied_everything(
    make_dest: Callable[..., TestDestination],
) -> tuple[TestDestination, TestDestination, str]:
    local, s3 = make_dest("file"), make_dest("s3")
    _source(local)
    to = _s3_url(s3)
    copied = pgvault("copy", local.url, SERVER, B1, B2, B3, LOGICAL, "--to", to)
    assert copied.returncode == 0, copied.stderr
    return local, s3, to


def test_deleting_backups_at_the_source_drops_them_from_the_copies_record(
    make_dest: Callable[..., TestDestination],
) -> None:
    local, _, to = _copied_everything(make_dest)
    public = _recorded(local)[B1]
    assert set(_recorded(local)) == {B1, B2, B3, LOGICAL}

    deleted = pgvault("backup-delete", local.url, SERVER, "-b", B1)
    assert deleted.returncode == 0, deleted.stderr
    assert set(_recorded(local)) == {B2, B3, LOGICAL}

    retention = pgvault("backup-delete", local.url, SERVER, "-r", "REDUNDANCY 1")
    assert retention.returncode == 0, retention.stderr
    assert set(_recorded(local)) == {B3, LOGICAL}
    listed = pgvault("backup-list", local.url, SERVER, "--format", "json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["backups_list"]
    assert [(r["backup_id"], r["pgvault"]["copies"]) for r in rows] == [(B3, list(public))]

    logical = pgvault("backup-delete", local.url, SERVER, "-b", LOGICAL)
    assert logical.returncode == 0, logical.stderr
    assert set(_recorded(local)) == {B3}
    assert public == (to,)  # no credential in it: the public URL is the URL


def test_refresh_checks_each_recorded_copy_at_its_target_and_rewrites_the_record(
    make_dest: Callable[..., TestDestination],
) -> None:
    local, s3, to = _copied_everything(make_dest)
    other = make_dest("file")
    copied = pgvault("copy", local.url, SERVER, B3, "--to", other.url)
    assert copied.returncode == 0, copied.stderr
    shutil.rmtree(other.bucket)  # that copy is lost whole
    with s3.store() as store:
        store.delete_many([LAYOUT.backup_file(B1, "data.tar")])  # B1's copy is incomplete
        store.delete_many([LAYOUT.backup_info(B2)])  # B2's copy no longer exists
    dead = f"s3://{s3.bucket}/pfx?AWS_ENDPOINT=http://127.0.0.1:{free_port()}"
    ghost = "20251231T000000"
    with local.store() as store:
        record_copy(store, SERVER, [B3], dead)  # a target that cannot be reached
        record_copy(store, SERVER, [ghost], to)  # a backup the source does not have
    other_url = _recorded(local)[B3][1]

    refreshed = pgvault("copy", local.url, SERVER, "--refresh", "--format", "json")
    assert refreshed.returncode == 2, refreshed.stderr
    report = json.loads(refreshed.stdout)
    states = {(c["backup_id"], c["url"]): c["state"] for c in report["copies"]}
    assert states == {
        (B1, to): "incomplete",
        (B2, to): "missing",
        (B3, to): "complete",
        (B3, other_url): "missing",
        (B3, dead): "unchecked",
        (LOGICAL, to): "complete",
        (ghost, to): "source-gone",
    }
    assert (report["removed"], report["unchecked"]) == (4, 1)
    incomplete = next(c for c in report["copies"] if c["state"] == "incomplete")
    assert LAYOUT.backup_file(B1, "data.tar") in incomplete["detail"]
    # what stands, and what could not be checked, stays
    assert _recorded(local) == {B3: (to, dead), LOGICAL: (to,)}

    with local.store() as store:
        drop_copies(store, SERVER, {(B3, dead)})
    again = pgvault("copy", local.url, SERVER, "--refresh")
    assert again.returncode == 0, again.stderr
    assert f"{B3}  {to}  complete" in again.stdout
    assert "2 recorded copie(s) of pg1 checked: 2 complete" in again.stdout

    for extra in (["--to", to], [B3], ["--all"], ["--with-wal"], ["--detach"]):
        refused = pgvault("copy", local.url, SERVER, *extra, "--refresh")
        stderr = refused.stderr.strip()
        assert refused.returncode == 3, (extra, stderr)
        assert len(stderr.splitlines()) == 1 and "--refresh" in stderr, stderr
    no_target = pgvault("copy", local.url, SERVER, B3)
    assert no_target.returncode == 3 and "--to" in no_target.stderr, no_target.stderr
