"""PostgreSQL archives through `pgvault --batch wal-archive`, as an operator sets it up."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable

import pytest

from core.codecs import get_codec
from tests.support.catalog import wal_names
from tests.support.destinations import TestDestination
from tests.support.emulators import free_port
from tests.support.postgres import Cluster, world_dir
from tests.support.wal import (
    WalSample,
    archive_command,
    archived_bytes,
    archived_names,
    pg_wal_bytes,
    pgvault_run,
    switch_segments,
    wait_archived_count,
)

MODES = [None, "gzip", "bzip2", "xz", "snappy", "zstd", "lz4"]
FLAG = {
    None: [],
    "gzip": ["-z"],
    "bzip2": ["-j", "--compression-level", "low"],
    "xz": ["--xz"],
    "snappy": ["--snappy"],
    "zstd": ["--zstd", "--compression-level", "high"],
    "lz4": ["--lz4"],
}


def test_segments_land_in_barmans_layout_with_each_compression(
    destination: TestDestination, pgvault_bin: str, cluster_factory: Callable[..., Cluster]
) -> None:
    flags = [*destination.cli_args, "--tag", "kind,wal"]
    cluster = cluster_factory(
        archive_command=archive_command(pgvault_bin, destination.url, *flags),
        env=destination.env,
        settings={"wal_keep_size": "1GB"},
    )
    expected: dict[str, str | None] = {}
    for mode in MODES:
        command = archive_command(pgvault_bin, destination.url, *flags, *FLAG[mode])
        cluster.sql(f"alter system set archive_command = '{command}'")
        cluster.sql("select pg_reload_conf()")
        time.sleep(0.5)  # the archiver reloads on its next loop
        (segment,) = switch_segments(cluster, 1, rows=5000)
        expected[segment] = mode
        wait_archived_count(cluster, len(expected))
    assert cluster.one("select failed_count from pg_stat_archiver") == 0
    with destination.store() as store:
        keys = archived_names(store, "pg1")
        for segment, mode in expected.items():
            suffix = get_codec(mode).suffix if mode else ""
            assert keys[segment] == f"pg1/wals/{segment[:16]}/{segment}{suffix}"
            assert archived_bytes(store, keys[segment]) == pg_wal_bytes(cluster, segment)
            assert store.get_tags(keys[segment]) == {"kind": "wal"}


@pytest.fixture
def scratch() -> object:
    path = world_dir("pgvault-e2e-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_archiving_again_succeeds_for_the_same_bytes_and_fails_for_others(
    make_dest: Callable[..., TestDestination], pgvault_bin: str, wal_sample: WalSample, scratch: str
) -> None:
    dest = make_dest("s3")
    segment = wal_sample.segments[0]
    args = [*dest.cli_args, "--zstd", dest.url, "pg1"]
    first = pgvault_run(pgvault_bin, "wal-archive", *args, wal_sample.path(segment), env=dest.env)
    assert first.returncode == 0, first.stderr
    again = pgvault_run(pgvault_bin, "wal-archive", *args, wal_sample.path(segment), env=dest.env)
    assert again.returncode == 0, again.stderr
    with dest.store() as store:
        key = archived_names(store, "pg1")[segment]
        original = store.get_bytes(key)

    changed = bytearray(wal_sample.read(segment))
    changed[len(changed) // 3] ^= 0x55
    path = os.path.join(scratch, segment)
    with open(path, "wb") as fh:
        fh.write(changed)
    for compression in ("--zstd", "--gzip"):
        other = [*dest.cli_args, compression, dest.url, "pg1"]
        refused = pgvault_run(pgvault_bin, "wal-archive", *other, path, env=dest.env)
        assert refused.returncode == 1
        assert "already archived" in refused.stderr and "different content" in refused.stderr
        assert refused.stderr.count("\n") == 1  # one line, no traceback
    with dest.store() as store:
        assert [o.key for o in store.list_objects("pg1/wals/")] == [key]
        assert store.get_bytes(key) == original


def test_bad_input_gets_one_line_and_the_seeds_exit_code(
    make_dest: Callable[..., TestDestination], pgvault_bin: str, wal_sample: WalSample, scratch: str
) -> None:
    dest = make_dest("s3")
    base = [*dest.cli_args, dest.url, "pg1"]
    cases = [
        (["wal-archive", *base, os.path.join(scratch, "not-a-wal")], 3, "invalid name"),
        (
            ["wal-archive", *base, os.path.join(scratch, "000000010000000000000042")],
            3,
            "does not exist",
        ),
        (["wal-archive", *base], 3, "WAL_PATH"),
        (
            [
                "wal-archive",
                "--compression-level",
                "high",
                *base,
                wal_sample.path(wal_sample.segments[0]),
            ],
            3,
            "needs a compression",
        ),
        (
            [
                "wal-archive",
                "--zstd",
                "--compression-level",
                "extreme",
                *base,
                wal_sample.path(wal_sample.segments[0]),
            ],
            3,
            "compression level",
        ),
        (
            [
                "wal-archive",
                "--sse-kms-key-id",
                "k",
                *base,
                wal_sample.path(wal_sample.segments[0]),
            ],
            3,
            "aws:kms",
        ),
    ]
    cases += [
        (["wal-archive", "-J", "8", *base, wal_sample.path(wal_sample.segments[0])], 3, "--async"),
        (
            ["wal-archive", "--spool-dir", scratch, *base, wal_sample.path(wal_sample.segments[0])],
            3,
            "--async",
        ),
    ]
    garbage = os.path.join(scratch, "000000010000000000000077")
    with open(garbage, "wb") as fh:
        fh.write(os.urandom(16 * 1024 * 1024))
    cases.append((["wal-archive", *base, garbage], 1, "refusing to archive"))
    for args, code, text in cases:
        result = pgvault_run(pgvault_bin, *args, env=dest.env)
        assert result.returncode == code, (args, result.stderr)
        assert text in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    with dest.store() as store:
        assert archived_names(store, "pg1") == {}


def test_test_mode_and_unreachable_or_missing_destinations(
    make_dest: Callable[..., TestDestination], pgvault_bin: str, wal_sample: WalSample
) -> None:
    dest = make_dest("s3")
    segment = wal_sample.path(wal_sample.segments[0])
    ok = pgvault_run(
        pgvault_bin, "wal-archive", "-t", *dest.cli_args, dest.url, "pg1", env=dest.env
    )
    assert ok.returncode == 0, ok.stderr

    missing = make_dest("s3", create=False)
    for extra in ([], [segment]):
        result = pgvault_run(
            pgvault_bin,
            "wal-archive",
            *(["-t"] if not extra else []),
            *missing.cli_args,
            missing.url,
            "pg1",
            *extra,
            env=missing.env,
        )
        assert result.returncode == 1, result.stderr
        assert "does not exist" in result.stderr

    dead = f"http://127.0.0.1:{free_port()}"
    secret = "s3cr3tValueNeverPrinted"
    url = f"s3://bucket/p?AWS_ACCESS_KEY_ID=AKIAX&AWS_SECRET_ACCESS_KEY={secret}"
    for extra in (["-t"], []):
        result = pgvault_run(
            pgvault_bin,
            "wal-archive",
            *extra,
            "--endpoint-url",
            dead,
            url,
            "pg1",
            *([] if extra else [segment]),
        )
        assert result.returncode == 2, result.stderr
        assert "cannot reach" in result.stderr
        assert secret not in result.stderr + result.stdout


def test_flags_of_another_provider_are_refused_naming_them(
    make_dest: Callable[..., TestDestination], pgvault_bin: str, wal_sample: WalSample
) -> None:
    dest = make_dest("s3")
    result = pgvault_run(
        pgvault_bin,
        "wal-archive",
        *dest.cli_args,
        "--kms-key-name",
        "k",
        "--max-concurrency",
        "4",
        dest.url,
        "pg1",
        wal_sample.path(wal_sample.segments[0]),
        env=dest.env,
    )
    assert result.returncode == 3, result.stderr
    assert "--kms-key-name: for google-cloud-storage only" in result.stderr
    assert "--max-concurrency: for azure-blob-storage only" in result.stderr
    assert "Traceback" not in result.stderr
    assert not wal_names(dest), "nothing is archived when a flag is refused"
