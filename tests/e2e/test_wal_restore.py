"""`pgvault --batch wal-restore` as restore_command: verified files, exit codes, prefetch."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
from collections.abc import Callable, Iterator

import pytest

from core.storage import PutOptions
from tests.support.destinations import TestDestination
from tests.support.emulators import free_port
from tests.support.postgres import world_dir
from tests.support.wal import WalSample, archived_names, pgvault_run


@pytest.fixture
def pgdata() -> Iterator[str]:
    """A directory shaped like a data directory being restored: PG_VERSION, pg_wal/."""
    path = world_dir("pgvault-pgdata-")
    os.makedirs(os.path.join(path, "pg_wal"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _dest(pgdata: str) -> str:
    return os.path.join(pgdata, "pg_wal", "RECOVERYXLOG")


def _archive(pgvault_bin: str, dest: TestDestination, sample: WalSample, *flags: str) -> None:
    for name in sample.segments:
        result = pgvault_run(
            pgvault_bin,
            "wal-archive",
            *dest.cli_args,
            *flags,
            dest.url,
            "pg1",
            sample.path(name),
            env=dest.env,
        )
        assert result.returncode == 0, result.stderr


def _restore(
    pgvault_bin: str, dest: TestDestination, name: str, target: str, *flags: str, url: str = ""
) -> object:
    return pgvault_run(
        pgvault_bin,
        "wal-restore",
        *dest.cli_args,
        *flags,
        url or dest.url,
        "pg1",
        name,
        target,
        env=dest.env,
    )


@pytest.mark.parametrize("provider", ["file", "s3"])
def test_truncated_or_corrupted_archived_segments_are_refused(
    provider: str,
    make_dest: Callable[..., TestDestination],
    pgvault_bin: str,
    wal_sample: WalSample,
    pgdata: str,
) -> None:
    dest = make_dest(provider)
    plain, gz, third = wal_sample.segments
    for name, flags in ((plain, []), (gz, ["-z"]), (third, [])):
        result = pgvault_run(
            pgvault_bin,
            "wal-archive",
            *dest.cli_args,
            *flags,
            dest.url,
            "pg1",
            wal_sample.path(name),
            env=dest.env,
        )
        assert result.returncode == 0, result.stderr
    with dest.store() as store:
        keys = archived_names(store, "pg1")
        meta = {n: store.head(keys[n]).metadata for n in (plain, gz)}
        original = {n: store.get_bytes(keys[n]) for n in (plain, gz)}

    def damage(name: str, data: bytes, keep_metadata: bool) -> None:
        with dest.store() as store:
            store.delete_many([keys[name]])
            store.put_bytes(
                keys[name], data, PutOptions(metadata=meta[name] if keep_metadata else ())
            )

    flipped = bytearray(original[plain])
    flipped[len(flipped) // 2] ^= 0xFF
    gz_flipped = bytearray(original[gz])
    gz_flipped[len(gz_flipped) // 2] ^= 0xFF
    cases = [
        (plain, original[plain][: len(original[plain]) // 2], True, "archived"),
        (plain, original[plain][: len(original[plain]) // 2], False, "bytes where the header"),
        (plain, bytes(flipped), True, "SHA-256"),
        (plain, bytes(64) + original[plain][64:], False, "magic"),
        (gz, original[gz][: len(original[gz]) // 2], True, "does not decompress"),
        (gz, bytes(gz_flipped), False, "does not decompress"),
        (gz, gzip.compress(wal_sample.read(third)), False, "belongs to the segment"),
    ]
    target = _dest(pgdata)
    for name, data, keep, message in cases:
        damage(name, data, keep)
        for flags, code in (([], 4), (["--abort-on-error"], 255)):
            result = _restore(pgvault_bin, dest, name, target, *flags)
            assert result.returncode == code, (message, result.stderr)
            assert message in result.stderr, (message, result.stderr)
            assert "was not written to" in result.stderr
            assert result.stderr.count("\n") == 1  # one line
            assert not os.path.exists(target), "a refused file reached WAL_DEST"
            assert os.listdir(os.path.join(pgdata, "pg_wal")) == []  # no temp file left
    # A sound copy is delivered byte for byte.
    damage(plain, original[plain], True)
    result = _restore(pgvault_bin, dest, plain, target)
    assert result.returncode == 0, result.stderr
    with open(target, "rb") as fh:
        assert fh.read() == wal_sample.read(plain)


def test_missing_files_exit_1_quietly_and_broken_destinations_loudly(
    make_dest: Callable[..., TestDestination],
    pgvault_bin: str,
    wal_sample: WalSample,
    pgdata: str,
) -> None:
    dest = make_dest("s3")
    _archive(pgvault_bin, dest, wal_sample)
    target = _dest(pgdata)
    for name in ("0000000100000000000000F0", "00000002.history"):
        result = _restore(pgvault_bin, dest, name, target)
        assert (result.returncode, result.stderr, result.stdout) == (1, "", "")
    assert not os.path.exists(target)

    missing = make_dest("s3", create=False)
    result = _restore(pgvault_bin, missing, wal_sample.segments[0], target)
    assert result.returncode == 4 and "does not exist" in result.stderr

    result = _restore(pgvault_bin, dest, "bogus", target)
    assert result.returncode == 3 and "invalid name" in result.stderr

    dead = f"http://127.0.0.1:{free_port()}"
    result = pgvault_run(
        pgvault_bin,
        "wal-restore",
        "--endpoint-url",
        dead,
        dest.url,
        "pg1",
        wal_sample.segments[0],
        target,
        env=dest.env,
    )
    assert result.returncode == 2 and "cannot reach" in result.stderr
    result = pgvault_run(
        pgvault_bin,
        "wal-restore",
        "--abort-on-error",
        "--endpoint-url",
        dead,
        dest.url,
        "pg1",
        wal_sample.segments[0],
        target,
        env=dest.env,
    )
    assert result.returncode == 255 and "cannot reach" in result.stderr
    assert not os.path.exists(target)


def test_prefetched_segments_are_served_from_the_spool(
    make_dest: Callable[..., TestDestination],
    pgvault_bin: str,
    wal_sample: WalSample,
    pgdata: str,
    scratch_dirs: Callable[[str], str],
) -> None:
    dest = make_dest("gcs")
    _archive(pgvault_bin, dest, wal_sample, "--lz4")
    spool = scratch_dirs("pgvault-walspool-")
    first, second, third = wal_sample.segments
    target = _dest(pgdata)
    result = _restore(pgvault_bin, dest, first, target, "-p", "3", "--spool-dir", spool)
    assert result.returncode == 0, result.stderr
    (namespace,) = os.listdir(spool)
    assert sorted(os.listdir(os.path.join(spool, namespace))) == [second, third]
    assert os.stat(os.path.join(spool, namespace)).st_mode & 0o777 == 0o700

    with dest.store() as store:  # the archive loses them: the spool still has them
        store.delete_many(list(archived_names(store, "pg1").values()))
    for name in (second, third):
        result = _restore(pgvault_bin, dest, name, target, "-p", "3", "--spool-dir", spool)
        assert result.returncode == 0, result.stderr
        with open(target, "rb") as fh:
            assert fh.read() == wal_sample.read(name)
    assert os.listdir(os.path.join(spool, namespace)) == []


def test_a_spool_others_can_write_to_is_not_trusted(
    make_dest: Callable[..., TestDestination],
    pgvault_bin: str,
    wal_sample: WalSample,
    pgdata: str,
    scratch_dirs: Callable[[str], str],
) -> None:
    dest = make_dest("file")
    _archive(pgvault_bin, dest, wal_sample)
    spool = scratch_dirs("pgvault-walspool-")
    first, second, _ = wal_sample.segments
    target = _dest(pgdata)
    assert (
        _restore(pgvault_bin, dest, first, target, "-p", "2", "--spool-dir", spool).returncode == 0
    )
    (namespace,) = os.listdir(spool)
    planted = os.path.join(spool, namespace, second)
    with open(planted, "r+b") as fh:  # someone rewrites the prefetched file...
        fh.write(b"\0" * 64)
    os.chmod(os.path.join(spool, namespace), 0o777)  # ...in a directory anyone can write
    result = _restore(pgvault_bin, dest, second, target, "-v", "--spool-dir", spool)
    assert result.returncode == 0, result.stderr
    assert "writable by other users" in result.stderr
    with open(target, "rb") as fh:
        assert fh.read() == wal_sample.read(second)


def test_partial_segments_and_the_clusters_own_wal(
    make_dest: Callable[..., TestDestination],
    pgvault_bin: str,
    wal_sample: WalSample,
    pgdata: str,
) -> None:
    dest = make_dest("azure")
    name = wal_sample.segments[0]
    with dest.store() as store:
        store.put_bytes(f"pg1/wals/{name[:16]}/{name}.partial", wal_sample.read(name))
    target = _dest(pgdata)
    assert _restore(pgvault_bin, dest, name, target, "--no-partial").returncode == 1
    assert _restore(pgvault_bin, dest, name, target).returncode == 0  # barman's rule

    # In a data directory, WAL of another cluster is refused.
    os.remove(target)
    with open(os.path.join(pgdata, "PG_VERSION"), "w") as fh:
        fh.write("15\n")
    os.makedirs(os.path.join(pgdata, "global"))
    with open(os.path.join(pgdata, "global", "pg_control"), "wb") as fh:
        fh.write(struct.pack("<Q", wal_sample.system_identifier + 1) + bytes(8184))
    result = _restore(pgvault_bin, dest, name, target)
    assert result.returncode == 4 and "not of this cluster" in result.stderr
    assert not os.path.exists(target)
    with open(os.path.join(pgdata, "global", "pg_control"), "wb") as fh:
        fh.write(struct.pack("<Q", wal_sample.system_identifier) + bytes(8184))
    assert _restore(pgvault_bin, dest, name, target).returncode == 0
