"""`pgvault --batch check-wal-archive`: barman's rule for a new server, and the gap check."""

from __future__ import annotations

from collections.abc import Callable

from core.catalog.backup_info import DONE, FAILED, BackupInfo, serialize
from core.catalog.reader import Catalog
from core.postgres.walnames import Segment
from tests.support.destinations import TestDestination
from tests.support.emulators import free_port
from tests.support.postgres import Cluster
from tests.support.wal import (
    WalSample,
    archive_command,
    archived_names,
    pgvault_run,
    switch_segments,
)


def _archive(pgvault_bin: str, dest: TestDestination, sample: WalSample) -> None:
    for name in sample.segments:
        result = pgvault_run(
            pgvault_bin,
            "wal-archive",
            *dest.cli_args,
            "--gzip",
            dest.url,
            "pg1",
            sample.path(name),
            env=dest.env,
        )
        assert result.returncode == 0, result.stderr


def test_a_new_server_may_use_only_an_empty_archive_or_a_new_timeline(
    make_dest: Callable[..., TestDestination], pgvault_bin: str, wal_sample: WalSample
) -> None:
    dest = make_dest("azure")
    check = ["check-wal-archive", *dest.cli_args, dest.url, "pg1"]
    assert pgvault_run(pgvault_bin, *check, env=dest.env).returncode == 0
    _archive(pgvault_bin, dest, wal_sample)
    refused = pgvault_run(pgvault_bin, *check, env=dest.env)
    assert refused.returncode == 1 and "expected an empty WAL archive" in refused.stderr
    assert pgvault_run(pgvault_bin, *check, "--timeline", "2", env=dest.env).returncode == 0
    refused = pgvault_run(pgvault_bin, *check, "--timeline", "1", env=dest.env)
    assert refused.returncode == 1 and "equal to or newer than timeline 1" in refused.stderr
    assert pgvault_run(pgvault_bin, *check, "--timeline", "0", env=dest.env).returncode == 3
    # Another server name on the same destination is empty.
    other = ["check-wal-archive", *dest.cli_args, dest.url, "pg2"]
    assert pgvault_run(pgvault_bin, *other, env=dest.env).returncode == 0


def test_missing_buckets_are_reported_not_created(
    make_dest: Callable[..., TestDestination], pgvault_bin: str
) -> None:
    missing = make_dest("s3", create=False)
    for extra in ([], ["-t"]):
        result = pgvault_run(
            pgvault_bin,
            "check-wal-archive",
            *extra,
            *missing.cli_args,
            missing.url,
            "pg1",
            env=missing.env,
        )
        assert result.returncode == 1 and "does not exist" in result.stderr
    import boto3

    s3 = boto3.client("s3", endpoint_url=missing.cli_args[1], region_name="us-east-1")
    assert missing.bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    dead = f"http://127.0.0.1:{free_port()}"
    result = pgvault_run(
        pgvault_bin,
        "check-wal-archive",
        "--endpoint-url",
        dead,
        missing.url,
        "pg1",
        env=missing.env,
    )
    assert result.returncode == 2


def test_the_gap_check_lists_what_each_backup_lacks(
    make_dest: Callable[..., TestDestination], pgvault_bin: str, wal_sample: WalSample
) -> None:
    dest = make_dest("gcs")
    # A server with nothing archived (a misspelt name in a monitoring check) does not pass.
    empty = ["check-wal-archive", "--gaps", *dest.cli_args, dest.url, "pg1"]
    result = pgvault_run(pgvault_bin, *empty, env=dest.env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "nothing is archived for server pg1" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""

    _archive(pgvault_bin, dest, wal_sample)
    first, second, third = wal_sample.segments
    fourth = Segment.parse(third).next().name()

    def backup(backup_id: str, begin: str, end: str, status: str = DONE) -> None:
        info = BackupInfo(
            backup_id=backup_id,
            status=status,
            begin_wal=begin,
            end_wal=end,
            timeline=1,
            xlog_segment_size=16 * 1024 * 1024,
        )
        with dest.store() as store:
            store.put_bytes(f"pg1/base/{backup_id}/backup.info", serialize(info))

    gaps = ["check-wal-archive", "--gaps", *dest.cli_args, dest.url, "pg1"]
    result = pgvault_run(pgvault_bin, *gaps, env=dest.env)
    assert result.returncode == 0 and "no completed backups" in result.stdout

    backup("20261121T100000", first, first)
    backup("20261121T110000", first, fourth, status=FAILED)  # not restorable anyway
    result = pgvault_run(pgvault_bin, *gaps, env=dest.env)
    assert result.returncode == 0, result.stderr
    assert f"all segments present; WAL continuous to {third}" in result.stdout
    summary = result.stdout.splitlines()[-1]
    assert summary == (
        f"checked the WAL archive of pg1: 3 WAL segment(s) on timeline(s) 1 ({first}..{third}), "
        "1 completed backup(s): no gap"
    )

    backup("20261121T120000", second, fourth)
    result = pgvault_run(pgvault_bin, *gaps, env=dest.env)
    assert result.returncode == 1
    assert (
        f"backup 20261121T120000 ({second}..{fourth}): MISSING 1 segment(s) it needs: {fourth}"
        in result.stdout
    )
    assert "1 of 2 backup(s) lack WAL segments (listed above)" in result.stderr
    # With --format json nothing is listed above the line: the report on stdout holds them.
    as_json = pgvault_run(pgvault_bin, *gaps, "--format", "json", env=dest.env)
    assert as_json.returncode == 1 and "listed above" not in as_json.stderr, as_json.stderr
    assert "lack WAL segments (in the report's backups)" in as_json.stderr, as_json.stderr

    with dest.store() as store:  # a hole after the first backup
        store.delete_many([f"pg1/wals/{second[:16]}/{second}.gz"])
    result = pgvault_run(pgvault_bin, *gaps, env=dest.env)
    assert result.returncode == 1
    assert (
        f"backup 20261121T100000 ({first}..{first}): all segments present; WAL after it has "
        f"1 missing segment(s) ({second}); recovery stops at {first}"
    ) in result.stdout
    summary = result.stdout.splitlines()[-1]
    assert summary.startswith("checked the WAL archive of pg1: 2 WAL segment(s) on timeline(s) 1")
    assert summary.endswith(
        f"2 gap(s), 2 segment(s) missing; first gap {second}..{second} on timeline 1; "
        "2 backup(s) lack WAL"
    )
    bad = pgvault_run(pgvault_bin, *gaps, "--timeline", "2", env=dest.env)
    assert bad.returncode == 3


def test_a_real_backup_and_its_archived_wal_pass_the_gap_check(
    make_dest: Callable[..., TestDestination],
    pgvault_bin: str,
    cluster_factory: Callable[..., Cluster],
) -> None:
    dest = make_dest("s3")
    cluster = cluster_factory(
        archive_command=archive_command(pgvault_bin, dest.url, *dest.cli_args, "--lz4"),
        env=dest.env,
    )
    switch_segments(cluster, 2, rows=2000)
    backup = pgvault_run(
        pgvault_bin,
        "backup",
        "--immediate-checkpoint",
        *cluster.conninfo_args(),
        *dest.cli_args,
        dest.url,
        "pg1",
        env=dest.env,
    )
    assert backup.returncode == 0, backup.stderr
    after = switch_segments(cluster, 2, rows=2000)
    cluster.wait_archived(after[-1])
    gaps = ["check-wal-archive", "--gaps", *dest.cli_args, dest.url, "pg1"]
    result = pgvault_run(pgvault_bin, *gaps, env=dest.env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"all segments present; WAL continuous to {after[-1]}" in result.stdout

    with dest.store() as store:
        (info,) = Catalog(store, "pg1").backups()
        keys = archived_names(store, "pg1")
        store.delete_many([keys[info.begin_wal]])
    result = pgvault_run(pgvault_bin, *gaps, env=dest.env)
    assert result.returncode == 1
    assert f"MISSING 1 segment(s) it needs: {info.begin_wal}" in result.stdout
