"""The Barman hook mode's refusals, on one real Barman backup: each is one line, with
barman-cloud's exit code (63 for a backup that is not DONE, 3 for bad input), and writes
nothing; a retry after a failed upload replaces its leftovers."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator

import pytest

from tests.support.barman_server import SERVER, BarmanServer, make_barman_server
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination, make_destination


@pytest.fixture(scope="module")
def barman(pgvault_bin: str) -> Iterator[tuple[BarmanServer, str]]:
    """A Barman server with one DONE backup of a small cluster (no hook configured)."""
    dest = make_destination("file", {})
    server = make_barman_server(dest, pgvault_bin, hook=False)
    try:
        server.cluster.sql("create table t as select g from generate_series(1, 1000) g")
        backup_id, _ = server.backup()
        yield server, backup_id
    finally:
        server.drop()
        dest.drop()


def _env(server: BarmanServer, backup_id: str, **changes: str) -> dict[str, str]:
    """A post_backup_script's environment (a retry script's bad input exits 63, see below)."""
    return {**server.hook_env(backup_id, hook="backup_script"), **changes}


def _objects(dest: TestDestination) -> list[str]:
    with dest.store() as store:
        return sorted(o.key for o in store.list_objects(""))


def _hook(dest: TestDestination, env: dict[str, str], *flags: str) -> tuple[int, str, list[str]]:
    result = pgvault("backup", *flags, dest.url, SERVER, env=env)
    assert "Traceback" not in result.stderr
    return result.returncode, result.stderr, _objects(dest)


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(
    "missing", ["BARMAN_BACKUP_DIR", "BARMAN_BACKUP_ID", "BARMAN_BACKUP_INFO_PATH"]
)
def test_a_missing_barman_variable_is_bad_input(
    barman: tuple[BarmanServer, str], make_dest: Callable[..., TestDestination], missing: str
) -> None:
    server, backup_id = barman
    dest = make_dest("file")
    env = _env(server, backup_id)
    del env[missing]
    code, stderr, objects = _hook(dest, env)
    assert code == 3 and f"{missing} not set" in _one_line(stderr)
    assert objects == []


@pytest.mark.parametrize("status", ["FAILED", "WAITING_FOR_WALS"])
def test_a_backup_that_is_not_done_exits_63_as_barman_cloud_does(
    barman: tuple[BarmanServer, str], make_dest: Callable[..., TestDestination], status: str
) -> None:
    server, backup_id = barman
    dest = make_dest("file")
    code, stderr, objects = _hook(dest, server.hook_env(backup_id, status=status))
    line = _one_line(stderr)
    assert code == 63 and f"status '{status}'" in line and "should be: DONE" in line
    assert objects == []


@pytest.mark.parametrize(
    ("env", "flags", "named"),
    [
        ({"BARMAN_PHASE": "pre"}, [], "unsupported Barman hook script: pre_backup_script"),
        ({"BARMAN_HOOK": "archive_script"}, [], "unsupported Barman hook script"),
        ({"BARMAN_BACKUP_ID": "latest"}, [], "not a Barman backup ID"),
        ({"BARMAN_BACKUP_INFO_PATH": "/nonexistent/backup.info"}, [], "cannot read"),
        ({"BARMAN_BACKUP_DIR": "/tmp"}, [], "is not a Barman backup's data directory"),
        ({}, ["-n", "nightly"], "-n/--name cannot be used"),
        ({}, ["--incremental"], "--incremental cannot be used"),
    ],
)
def test_bad_hook_input_exits_3_and_writes_nothing(
    barman: tuple[BarmanServer, str],
    make_dest: Callable[..., TestDestination],
    env: dict[str, str],
    flags: list[str],
    named: str,
) -> None:
    server, backup_id = barman
    dest = make_dest("file")
    code, stderr, objects = _hook(dest, {**_env(server, backup_id), **env}, *flags)
    assert code == 3 and named in _one_line(stderr)
    assert objects == []


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("compression", "gzip", "is compressed (gzip)"),
        ("encryption", "gpg", "is encrypted (gpg)"),
        ("parent_backup_id", "20260101T000000", "is incremental (20260101T000000)"),
    ],
)
def test_compressed_encrypted_and_incremental_barman_backups_are_refused(
    barman: tuple[BarmanServer, str],
    make_dest: Callable[..., TestDestination],
    tmp_path: object,
    field: str,
    value: str,
    named: str,
) -> None:
    """Barman's own backup.info, with the one field such a backup has set."""
    server, backup_id = barman
    dest = make_dest("file")
    with open(server.info_path(backup_id)) as fh:
        lines = [
            f"{field}={value}" if ln.startswith(f"{field}=") else ln
            for ln in fh.read().splitlines()
        ]
    info = os.path.join(str(tmp_path), "backup.info")
    with open(info, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    env = _env(server, backup_id, BARMAN_BACKUP_INFO_PATH=info)
    code, stderr, objects = _hook(dest, env)
    line = _one_line(stderr)
    assert code == 3 and f"Barman backup {backup_id} {named}" in line
    assert objects == []


def test_a_real_compressed_barman_backup_is_refused_and_barman_stops_retrying(
    make_dest: Callable[..., TestDestination], pgvault_bin: str
) -> None:
    """backup_compression = gzip: Barman keeps pg_basebackup's gzipped tar files. As a
    post_backup_retry_script the refusal exits 63, or Barman would rerun it for ever."""
    dest = make_dest("s3")
    server = make_barman_server(dest, pgvault_bin, options=("backup_compression = gzip",))
    try:
        backup_id, _ = server.backup()
        with open(os.path.join(server.base, "barman.log")) as fh:
            log = fh.read()
        assert f"Barman backup {backup_id} is compressed (gzip)" in log
        assert "returned 63" in log and log.count("returned ") == 1, log[-2000:]
        with open(server.info_path(backup_id)) as fh:
            assert "compression=gzip" in fh.read()
        code, stderr, objects = _hook(dest, _env(server, backup_id))
        assert code == 3 and f"Barman backup {backup_id} is compressed (gzip)" in _one_line(stderr)
        assert not [o for o in objects if "/base/" in o]
    finally:
        server.drop()


def test_bad_input_ends_a_retry_scripts_retries_with_63(
    barman: tuple[BarmanServer, str], make_dest: Callable[..., TestDestination]
) -> None:
    server, backup_id = barman
    dest = make_dest("file")
    env = server.hook_env(backup_id)  # backup_retry_script
    del env["BARMAN_BACKUP_DIR"]
    code, stderr, objects = _hook(dest, env)
    assert code == 63 and "BARMAN_BACKUP_DIR not set (not retried)" in _one_line(stderr)
    code, stderr, objects = _hook(dest, server.hook_env(backup_id), "-n", "nightly")
    assert code == 63 and "-n/--name cannot be used" in _one_line(stderr)
    assert objects == []


def test_a_retry_replaces_a_failed_uploads_leftovers_and_never_another_backup(
    barman: tuple[BarmanServer, str], make_dest: Callable[..., TestDestination]
) -> None:
    server, backup_id = barman
    dest = make_dest("file")
    root = dest.url.removeprefix("file://")
    stray = os.path.join(root, SERVER, "base", backup_id, "data_0007.tar")
    os.makedirs(os.path.dirname(stray))
    with open(stray, "wb") as fh:
        fh.write(b"a part of an upload that failed")
    env = server.hook_env(backup_id)
    code, stderr, objects = _hook(dest, env)
    assert code == 0, stderr
    prefix = f"{SERVER}/base/{backup_id}/"
    assert [o for o in objects if o.startswith(prefix)] == [
        f"{prefix}backup.info",
        f"{prefix}backup_manifest",
        f"{prefix}data.tar",
        f"{prefix}pgvault.json",
    ]

    # Another backup under the same ID (another cluster's) is never overwritten: exit 1.
    info = os.path.join(root, prefix, "backup.info")
    with open(info) as fh:
        text = fh.read()
    with open(info, "w") as fh:
        fh.write(text.replace("systemid=", "systemid=1"))
    before = _objects(dest)
    code, stderr, objects = _hook(dest, env)
    assert code == 1 and "is another backup: not overwritten" in _one_line(stderr)
    assert objects == before
    shutil.rmtree(root, ignore_errors=True)


def test_a_backup_manifest_with_other_checksums_is_not_stored(
    barman: tuple[BarmanServer, str], make_dest: Callable[..., TestDestination]
) -> None:
    """pg_basebackup's CRC32C manifest would disagree with a SHA-256 pgvault.json file by file."""
    server, backup_id = barman
    dest = make_dest("file")
    code, stderr, objects = _hook(dest, _env(server, backup_id), "--checksum-algorithm", "sha256")
    assert code == 0, stderr
    assert "backup_manifest has CRC32C checksums, not SHA256: not stored" in stderr
    prefix = f"{SERVER}/base/{backup_id}/"
    assert [o[len(prefix) :] for o in objects if o.startswith(prefix)] == [
        "backup.info",
        "data.tar",
        "pgvault.json",
    ]
    with dest.store() as store:
        manifest = json.loads(store.get_bytes(prefix + "pgvault.json"))
    assert manifest["checksum_algorithm"] == "SHA256" and manifest["state"] == "done"
    assert all(len(f["checksum"]) == 64 for f in manifest["files"])
