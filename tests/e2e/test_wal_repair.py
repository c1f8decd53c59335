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
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.catalog.reader import Catalog
from tests.support.destinations import TestDestination
from tests.support.pitr import Source, make_source, new_target, restore, restored_server, wait_log
from tests.support.postgres import chown_tree, wait_for_recovery_end
from tests.support.wal import archived_bytes, archived_names, pg_wal_bytes, pgvault_run

SERVER = "pg1"


@pytest.fixture
def sources(pgvault_bin: str) -> Iterator[Callable[..., Source]]:
    made: list[Source] = []

    def factory(dest: TestDestination, **settings: object) -> Source:
        if dest.provider == "file":
            # Owned by postgres, as the README's walkthrough has it: else the root-run backup
            # and the first archive_command race to create it, and a root-owned one refuses
            # postgres (the backup then waits for its WAL until the test times out).
            os.makedirs(dest.url.removeprefix("file://"), exist_ok=True)
            chown_tree(dest.bucket)
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


def _repair_jobs(pgvault_bin: str, dest: TestDestination) -> list[dict[str, Any]]:
    """The wal-repair jobs of this destination, oldest first (`jobs list --format json`)."""
    listed = pgvault_run(pgvault_bin, "jobs", "list", "--kind", "wal-repair", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    where = dest.url.split("?", 1)[0]
    jobs = [j for j in json.loads(listed.stdout) if where in (j["destination"] or "")]
    return sorted(jobs, key=lambda j: int(j["id"]))


def _archive_past(source: Source, dest: TestDestination, segment: str) -> None:
    """Write and archive WAL until a segment after `segment` is archived."""
    for _ in range(10):
        with dest.store() as store:
            if max(n for n in archived_names(store, SERVER) if len(n) == 24) > segment:
                return
        source.cluster.sql("select pg_create_restore_point('after_the_hole')")
        source.archive_everything()
    raise AssertionError(f"nothing archived after {segment}")


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
    _archive_past(source, dest, hole)  # WAL after the hole: it is a gap, not the archive's end
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
    job = _repair_jobs(pgvault_bin, dest)[-1]
    assert job["state"] == "succeeded" and job["result"]["repaired"] == [hole]
    assert (job["files_done"], job["files_total"]) == (1, 1)
    assert job["bytes_done"] == job["bytes_total"] == 16 * 1024 * 1024

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

    # Detached: the job id, then the same result in the job store.
    code, out, err = _check(
        pgvault_bin, dest, "--repair", "--detach", "--pgdata", source.cluster.data
    )
    assert code == 0, err
    job_id = out.strip()
    watched = pgvault_run(pgvault_bin, "jobs", "watch", job_id)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    shown = pgvault_run(pgvault_bin, "jobs", "show", job_id, "--format", "json")
    job = json.loads(shown.stdout)
    assert job["kind"] == "wal-repair" and job["state"] == "succeeded"
    assert job["result"]["lost"] == [line] and job["options"]["pgdata"] == source.cluster.data

    code, out, err = _check(pgvault_bin, dest, "--repair")
    assert code == 3 and "give --pgdata DIR or the connection flags" in err
    code, out, err = _check(pgvault_bin, dest, "--gaps", "--pgdata", source.cluster.data)
    assert code == 3 and "--pgdata: only with --repair" in err


def test_a_repaired_segment_is_encrypted_as_wal_archive_encrypts(
    make_dest: Callable[..., TestDestination],
    sources: Callable[..., Source],
    pgvault_bin: str,
    tmp_path: Path,
) -> None:
    dest = make_dest("file")
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    passfile = secrets / "pass"
    passfile.write_text("correct horse battery staple 7f3c\n")
    passfile.chmod(0o600)
    identity = secrets / "operator.key"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True
    ).stdout.strip()
    init = pgvault_run(
        pgvault_bin,
        "keys",
        "init",
        "--encryption-passphrase-file",
        str(passfile),
        "--encrypt-to",
        recipient,
        dest.url,
        SERVER,
    )
    assert init.returncode == 0, init.stderr
    chown_tree(dest.url.removeprefix("file://"))  # archive_command runs as postgres
    source = sources(dest, wal_keep_size="1GB")
    source.backup("--zstd")
    source.cluster.sql("insert into marks select g, 'x' from generate_series(1, 100) g")
    source.archive_everything()
    hole = source.cluster.one("select pg_walfile_name(pg_current_wal_lsn())")
    source.cluster.sql("insert into marks select g, 'y' from generate_series(101, 200) g")
    source.archive_everything()
    _archive_past(source, dest, hole)
    key = _delete_segment(dest, hole)
    assert key.endswith(".zst"), key  # wal-archive's name for it (encrypted in place)

    code, out, err = _check(pgvault_bin, dest, "--repair", "--pgdata", source.cluster.data)
    assert code == 0, out + err
    with dest.store() as store:
        assert archived_names(store, SERVER)[hole] == key
        body = store.get_bytes(key)
    assert body.startswith(b"age-encryption.org/v1\n")
    # The data key is wrapped to the operator's recipient in pgvault.keys (test_encryption).
    keys_file = Path(dest.url.removeprefix("file://"), SERVER, "pgvault.keys").read_text()
    wrap = keys_file.split("wrap: recipients", 1)[1].split("\n", 1)[1]
    wrap = wrap[: wrap.index("-----END AGE ENCRYPTED FILE-----") + 32] + "\n"
    ids = subprocess.run(
        ["age", "-d", "-i", str(identity)], input=wrap.encode(), check=True, capture_output=True
    ).stdout
    (secrets / "ids.txt").write_bytes(ids)
    compressed = subprocess.run(
        ["age", "-d", "-i", str(secrets / "ids.txt")], input=body, check=True, capture_output=True
    ).stdout
    plain = subprocess.run(["zstd", "-dc"], input=compressed, check=True, capture_output=True)
    assert plain.stdout == pg_wal_bytes(source.cluster, hole)
