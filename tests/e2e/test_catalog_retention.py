"""backup-keep and backup-delete on real backups, on every provider: REDUNDANCY 1 and a
RECOVERY WINDOW computed with an injected clock (--as-of) keep the right backups, a kept
backup survives both, FAILED backups older than the newest DONE one go, and so does the WAL
no remaining backup needs."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from core.postgres.walnames import is_segment
from tests.support.catalog import (
    SERVER,
    archived_server,
    json_out,
    object_keys,
    put_backup,
    wal_names,
)
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster


def _listed(server: object) -> list[tuple[str, str, str | None]]:
    data = json_out(server.run("backup-list", "--format", "json"))  # type: ignore[attr-defined]
    return [
        (e["backup_id"], e["status"], e["pgvault"]["keep"])
        for e in data["backups_list"]  # type: ignore[union-attr]
    ]


def _delete(server: object, *args: str, code: int = 0) -> str:
    result = server.run("backup-delete", *args)  # type: ignore[attr-defined]
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return str(result.stdout if code == 0 else result.stderr)


def _deleted(out: str) -> list[str]:
    """The backups a backup-delete run deleted (or would have), in order."""
    return re.findall(r"^(?:would delete|deleted) backup (\S+) ", out, re.MULTILINE)


def _as_of(moment: datetime | None) -> str:
    assert moment is not None
    return (moment + timedelta(days=1, seconds=1)).isoformat()


def test_retention_keeps_the_right_backups_and_the_wal_they_need(
    destination: TestDestination,
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
) -> None:
    server = archived_server(cluster_factory, destination, pgvault_bin)
    b1 = server.backup()
    server.write_wal(2)
    b2 = server.backup("--gzip")
    server.write_wal(2)
    time.sleep(2.1)  # room for the FAILED backup's ID between b2's and b3's
    b3 = server.backup()
    server.write_wal(1)
    i1, i2, i3 = (server.info(b) for b in (b1, b2, b3))
    # What a crashed run leaves: a FAILED backup, older than the newest DONE one.
    failed = (datetime.strptime(b2, "%Y%m%dT%H%M%S") + timedelta(seconds=1)).strftime(
        "%Y%m%dT%H%M%S"
    )
    assert b2 < failed < b3
    put_backup(destination, failed, status="FAILED", begin=i2.end_wal)

    kept = server.run("backup-keep", b1, "-r", "standalone")
    assert kept.returncode == 0, kept.stderr
    status = server.run("backup-keep", b1, "--status")
    assert status.stdout.strip() == "Keep: standalone"
    assert _listed(server) == [
        (b1, "DONE", "standalone"),
        (b2, "DONE", None),
        (failed, "FAILED", None),
        (b3, "DONE", None),
    ]

    # Dry runs delete nothing and say what a real run would.
    before = object_keys(destination)
    out = _delete(server, "-r", "REDUNDANCY 1", "--dry-run")
    assert f"would delete backup {b2} (DONE, OBSOLETE under REDUNDANCY 1)" in out, out
    assert f"would delete backup {failed} (FAILED, older than the newest DONE backup)" in out, out
    assert _deleted(out) == [b2, failed], out
    # A day and a second after b2 ended, b2 is the newest backup older than the window
    # start: it is still needed to recover to that point.
    out = _delete(
        server, "-r", "RECOVERY WINDOW OF 1 DAYS", "--as-of", _as_of(i2.end_time), "--dry-run"
    )
    assert _deleted(out) == [failed], out
    assert object_keys(destination) == before

    # A day and a second after b3 ended, for real: b2 and the FAILED one go; b1 is kept.
    out = _delete(server, "-r", "RECOVERY WINDOW OF 1 DAYS", "--as-of", _as_of(i3.end_time))
    assert f"deleted backup {b2} (DONE, OBSOLETE under RECOVERY WINDOW OF 1 DAYS)" in out, out
    assert f"deleted backup {failed} (FAILED" in out and _deleted(out) == [b2, failed], out
    assert _listed(server) == [(b1, "DONE", "standalone"), (b3, "DONE", None)]
    assert not object_keys(destination, f"{SERVER}/base/{b2}/")
    assert not object_keys(destination, f"{SERVER}/base/{failed}/")
    # WAL: what b1 needs to be consistent (standalone) and everything from b3 on stays.
    segments = sorted(n for n in wal_names(destination) if is_segment(n))
    assert i1.begin_wal in segments and i1.end_wal in segments
    assert i2.begin_wal not in segments
    assert all(n >= i3.begin_wal or i1.begin_wal <= n <= i1.end_wal for n in segments), segments
    assert i3.begin_wal in segments and segments[-1] > i3.end_wal
    for backup_id in (b1, b3):
        verified = server.run("verify", backup_id)
        assert verified.returncode == 0, verified.stderr

    # A kept backup is refused by -b, and survives REDUNDANCY 1 until it is released.
    refused = _delete(server, "-b", b1, code=1)
    assert "keep:standalone annotation" in refused and "backup-keep --release" in refused
    out = _delete(server, "-r", "REDUNDANCY 1")
    assert "nothing to delete" in out, out
    released = server.run("backup-keep", b1, "--release")
    assert released.returncode == 0, released.stderr
    assert server.run("backup-keep", b1, "--status").stdout.strip() == "Keep: nokeep"
    out = _delete(server, "-r", "REDUNDANCY 1")
    assert f"deleted backup {b1} (DONE, OBSOLETE under REDUNDANCY 1)" in out, out
    assert _deleted(out) == [b1], out
    assert _listed(server) == [(b3, "DONE", None)]
    segments = sorted(n for n in wal_names(destination) if is_segment(n))
    assert segments[0] == i3.begin_wal, segments
