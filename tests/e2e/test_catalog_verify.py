"""verify on real backups: a good one passes; a flipped byte, a missing archive part and a
missing WAL segment each fail with exit 1 and a message naming the object."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.support.catalog import (
    SERVER,
    archive_keys,
    archived_server,
    flip_byte,
    put_object,
    take_object,
    wal_key,
)
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster
from tests.support.sample import populate


def test_verify_passes_a_good_backup_and_names_each_damaged_object(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
) -> None:
    dest = make_dest("azure")
    server = archived_server(cluster_factory, dest, pgvault_bin)
    populate(server.cluster, rows=2000)
    backup_id = server.backup("--gzip", "-S", "1MB")
    server.write_wal(1)
    info = server.info(backup_id)
    parts = archive_keys(dest, backup_id)
    assert len(parts) >= 3, parts

    good = server.run("verify", backup_id)
    assert good.returncode == 0, good.stderr
    out = good.stdout
    assert "match pgvault.json" in out and "every recorded file is present" in out
    assert "backup_manifest: its own SHA-256 checksum matches, and it lists the same" in out
    assert f"WAL segment(s) needed to reach consistency ({info.begin_wal}" in out
    assert f"backup {backup_id}: verified" in out

    # As a detached job: the job id at once, the job's outcome through `jobs`.
    detached = server.run("verify", backup_id, "--detach")
    assert detached.returncode == 0 and detached.stdout.strip().isdigit(), detached.stderr
    watched = pgvault("jobs", "watch", detached.stdout.strip(), timeout=300)
    assert watched.returncode == 0, watched.stderr

    def failure(expected: list[str]) -> str:
        result = server.run("verify", backup_id)
        assert result.returncode == 1, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        for text in expected:
            assert text in result.stderr, result.stderr
        return result.stderr

    # A flipped byte in the middle of one part: that part, and only it, is named.
    damaged = parts[1]
    original = flip_byte(dest, damaged)
    message = failure([f"{damaged}: ", "checksum", "failed verification"])
    assert all(f"{key}:" not in message for key in parts if key != damaged)
    put_object(dest, damaged, original)

    # The last part gone: the listing is still contiguous, pgvault.json knows better.
    last = take_object(dest, parts[-1])
    failure([f"{parts[-1]}: recorded in pgvault.json, missing from the store"])
    put_object(dest, parts[-1], last)

    # A file pgvault.json records that its archive does not hold.
    manifest_key = f"{SERVER}/base/{backup_id}/pgvault.json"
    with dest.store() as store:
        recorded = store.get_bytes(manifest_key)
    document = json.loads(recorded)
    ghost = dict(document["files"][0], path="base/1/999999", archive="data_0001.tar.gz")
    document["files"].append(ghost)
    put_object(dest, manifest_key, json.dumps(document).encode())
    failure([f"{parts[1]}: base/1/999999 is recorded in pgvault.json but not in it"])
    put_object(dest, manifest_key, recorded)

    # A WAL segment the backup needs to reach consistency.
    key = wal_key(dest, info.begin_wal)
    segment = take_object(dest, key)
    failure([f"{SERVER}/wals/", info.begin_wal, "is not in the archive"])
    put_object(dest, key, segment)

    again = server.run("verify", backup_id)
    assert again.returncode == 0, again.stderr

    # Bad input is refused before any job is recorded; a backup that is not there is not.
    bad = server.run("verify", backup_id, "--no-amcheck")
    assert bad.returncode == 3 and "--no-amcheck applies to --restore-drill only" in bad.stderr
    missing = server.run("verify", "20000101T000000")
    assert missing.returncode == 1 and "not found" in missing.stderr
    for result in (bad, missing):
        assert "Traceback" not in result.stderr
