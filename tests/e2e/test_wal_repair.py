"""`check-wal-archive --repair`: a hole in the WAL archive filled again from the server's pg_wal.

A real server archives through `pgvault wal-archive`; a backup is taken; one segment after
it is deleted from the store. The gap check names the gap and the backup whose recovery
range it cuts; `--repair` uploads the segment again from pg_wal (wal_keep_size keeps it
there), and a point-in-time restore through the repaired range starts and holds the same
data as the source. A segment the server has recycled too is reported as a lost range.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator

import pytest

from core.catalog.reader import Catalog
from tests.support.destinations import TestDestination
from tests.support.pitr import Source, make_source, new_target, restore, restored_server, wait_log
from tests.support.postgres import wait_for_recovery_end
from tests.support.wal import archived_bytes, archived_names, pg_wal_bytes, pgvault_run

SERVER = "pg1"


@pytest.fixture
def sources(pgvault_bin: str) -> Iterator[Callable[..., Source]]:
    made: list[Source] = []

    def factory(dest: TestDestination, **settings: object) -> Source:
        made.append(make_source(dest, pgvault_bin, scale=1, settings=settings))
        return made[-1]

    yield factory
    for source in made:
        source.cluster.drop()


def _check(pgvault_bin: str, dest: TestDestination, *flags: str) -> tuple[int, str, str]:
    result = pgvault_run(
        pgvault_bin, "check-wal-archive", *flags, *dest.cli_args, dest.url, SERVER, env=dest.env
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr


def _delete_segment(dest: TestDestination, name: str) -> str:
    with dest.store() as store:
        key = archived_names(store, SERVER)[name]
        store.delete_many([key])
    return key


@pytest.mark.parametrize("provider", ["file", "s3"])
def test_a_deleted_segment_is_reported_repaired_and_replayed(
    provider: str,
    make_dest: Callable[..., TestDestination],
    sources: Callable[..., Source],
    pgvault_bin: str,
) -> None:
    dest = make_dest(provider)
    source = sources(dest, wal_keep_size="1GB")
    backup = source.backup("--zstd")
    source.archive_everything()  # the marks land in segments after the backup's end
    marks = source.commit_marks()
    hole = source.cluster.one("select pg_walfile_name(%s::pg_lsn)", (marks.lsn,))
    source.archive_everything()
    expected = source.cluster.table_checksums()
    source.cluster.sql("select pg_create_restore_point('after_the_hole')")
    source.archive_everything()  # WAL after the hole: it is a gap, not the archive's end
    with dest.store() as store:
        (info,) = Catalog(store, SERVER).backups()
    assert info.end_wal is not None and hole > info.end_wal
    key = _delete_segment(dest, hole)

    code, out, err = _check(pgvault_bin, dest, "--gaps")
    assert code == 1, out + err
    assert f"gap: timeline 1 {hole}..{hole} (1 segment(s) missing)" in out
    assert f"cuts the recovery range of backup(s) {backup}" in out
    assert "unrestorable" not in out  # the backup itself is complete
    code, out, _ = _check(pgvault_bin, dest, "--gaps", "--format", "json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert report["gaps"] == [
        {
            "timeline": 1,
            "start": hole,
            "end": hole,
            "segments": 1,
            "backups": [backup],
            "unrestorable": [],
        }
    ]

    if provider == "file":
        code, out, err = _check(pgvault_bin, dest, "--repair", "--pgdata", source.cluster.data)
    else:  # the connection flags: the server names its data directory
        code, out, err = _check(
            pgvault_bin,
            dest,
            "--repair",
            "--host",
            source.cluster.sock,
            "--port",
            str(source.cluster.port),
            "--user",
            "postgres",
        )
    assert code == 0, out + err
    assert "1 of 1 missing segment(s) archived again from" in out
    assert "gap:" not in out and "WAL continuous to" in out
    with dest.store() as store:
        again = archived_names(store, SERVER)[hole]
        assert again == key  # the same name and compression wal-archive gave it (.zst)
        assert archived_bytes(store, again) == pg_wal_bytes(source.cluster, hole)
    jobs = pgvault_run(pgvault_bin, "jobs", "list", "--kind", "wal-repair", "--format", "json")
    assert jobs.returncode == 0, jobs.stderr
    assert any(j["state"] == "succeeded" for j in json.loads(jobs.stdout))

    target = new_target()
    try:
        restore(dest, target, backup, "--target-lsn", marks.lsn, "--target-action", "promote")
        with restored_server(target, source.cluster.bindir) as server:
            wait_for_recovery_end(server)
            log = wait_log(server, "recovery stopping")
            assert f'restored log file "{hole}"' in log
            assert [r[0] for r in server.sql("select id from marks order by id")] == marks.before
            restored = server.table_checksums()
        assert {t: v for t, v in restored.items() if t != "public.marks"} == {
            t: v for t, v in expected.items() if t != "public.marks"
        }
    finally:
        target.drop()


def test_a_segment_gone_from_pg_wal_too_is_a_lost_range(
    make_dest: Callable[..., TestDestination],
    sources: Callable[..., Source],
    pgvault_bin: str,
) -> None:
    dest = make_dest("file")
    source = sources(dest, wal_keep_size="0", min_wal_size="32MB", max_wal_size="64MB")
    backup = source.backup("--zstd")
    source.archive_everything()
    lost = source.cluster.one("select pg_walfile_name(pg_current_wal_lsn())")
    for _ in range(6):  # the server recycles the old segments once they are archived
        source.cluster.sql("insert into marks select g, 'x' from generate_series(1, 1000) g")
        source.archive_everything()
        source.cluster.sql("delete from marks")
        source.cluster.sql("checkpoint")
    assert not os.path.exists(os.path.join(source.cluster.data, "pg_wal", lost))
    _delete_segment(dest, lost)

    code, out, err = _check(
        pgvault_bin, dest, "--repair", "--pgdata", source.cluster.data, "--format", "json"
    )
    assert code == 1, out + err
    report = json.loads(out)
    assert report["ok"] is False
    assert report["repair"]["repaired"] == [] and report["repair"]["missing"] == 1
    (gap,) = report["gaps"]
    assert (gap["start"], gap["end"], gap["backups"]) == (lost, lost, [backup])
    (line,) = report["repair"]["lost"]
    segno = int(lost[16:], 16) + (int(lost[8:16], 16) << 8)
    start = segno * 16 * 1024 * 1024
    lsn = f"{start >> 32:X}/{start & 0xFFFFFFFF:X}"
    assert line.startswith(f"lost: timeline 1 WAL {lsn} to ")
    assert f"recovery from backup(s) {backup} stops at {lsn}" in line
    assert line in err
    assert "1 segment(s) not repaired" in err and "take a new full backup" in err

    code, out, err = _check(pgvault_bin, dest, "--repair")
    assert code == 3 and "give --pgdata DIR or the connection flags" in err
    code, out, err = _check(pgvault_bin, dest, "--gaps", "--pgdata", source.cluster.data)
    assert code == 3 and "--pgdata only apply with --repair" in err
