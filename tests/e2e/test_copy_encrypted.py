"""An encrypted server copied from moto's S3 to Azurite without its key, restored there.

`copy` moves the age files as they are: no passphrase is given to it, every object on
Azurite is byte for byte the one in S3 (ciphertext, `pgvault.keys` included), and the copy
restores with the passphrase alone; PostgreSQL replays the WAL decrypted by restore_command
from Azurite and the tables match the source.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.test_encryption import _keys
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.pitr import make_source, new_target, restore, restored_server
from tests.support.postgres import Cluster

SERVER = "pg1"
PASSPHRASE = "copy the ciphertext only 41d9"
AGE_MAGIC = b"age-encryption.org/v1\n"


def _stored(dest: TestDestination) -> dict[str, bytes]:
    with dest.store() as store:
        return {o.key: store.get_bytes(o.key) for o in store.list_objects("")}


def _wait_promoted(server: Cluster, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # still starting or replaying
            if not server.one("select pg_is_in_recovery()"):
                return
        time.sleep(0.3)
    raise AssertionError(f"not promoted:\n{server.server_log()[-4000:]}")


def test_an_encrypted_backup_copies_as_ciphertext_and_restores_from_the_copy(
    make_dest: Callable[..., TestDestination], pgvault_bin: str, tmp_path: Path
) -> None:
    s3, azure = make_dest("s3"), make_dest("azure")
    passfile = tmp_path / "pass"
    passfile.write_text(PASSPHRASE + "\n")
    passfile.chmod(0o600)
    init = pgvault(
        "keys", "init", "--encryption-passphrase-file", str(passfile), *s3.cli_args, s3.url,
        SERVER, env=s3.env,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    source = make_source(s3, pgvault_bin, scale=1)
    try:
        backup = source.backup("--zstd")
        source.cluster.sql("insert into marks select g, 'after' from generate_series(1, 300) g")
        source.archive_everything()
        expected = source.cluster.table_checksums()
        bindir = source.cluster.bindir
    finally:
        source.cluster.drop()

    copied = pgvault(
        "copy", *s3.cli_args, s3.url, SERVER, "--all", "--to", azure.url, "--format", "json",
        env=s3.env,
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    assert PASSPHRASE not in copied.stdout + copied.stderr
    there, here = _stored(azure), _stored(s3)
    assert f"{SERVER}/pgvault.keys" in there
    for key, body in there.items():
        assert here[key] == body, key
    parts = [k for k in there if "/base/" in k and ".tar" in k]
    assert parts and all(there[k].startswith(AGE_MAGIC) for k in parts), parts
    assert any("/wals/" in k and there[k].startswith(AGE_MAGIC) for k in there)

    target = new_target()
    try:
        restore(azure, target, backup, "--encryption-passphrase-file", str(passfile))
        with restored_server(target, bindir) as server:
            _wait_promoted(server)
            assert server.table_checksums() == expected
    finally:
        target.drop()


def test_a_copy_after_keys_rotate_brings_the_new_key_file_and_the_chain_restores_there(
    make_dest: Callable[..., TestDestination], pgvault_bin: str, tmp_path: Path
) -> None:
    """Keys rotated (and rewrapped) on the source since the last copy: the target's key file
    is an older one of the same keys, so the next copy replaces it (an incremental sealed to
    the new data key copied beside the old key file could not be read there); a key file
    there holding a data key the source's lacks is still never overwritten."""
    local, azure, other = make_dest("file"), make_dest("azure"), make_dest("file")
    passfile = tmp_path / "pass"
    passfile.write_text(PASSPHRASE + "\n")
    passfile.chmod(0o600)
    newpass = tmp_path / "newpass"
    newpass.write_text("the rewrapped passphrase 77c2\n")
    newpass.chmod(0o600)
    keys = ("--encryption-passphrase-file", str(passfile))
    assert _keys(local, "init", *keys).returncode == 0
    source = make_source(local, pgvault_bin, scale=1)
    try:
        full = source.backup("--zstd")
        first = pgvault("copy", local.url, SERVER, full, "--to", azure.url)
        assert first.returncode == 0, first.stderr
        assert _keys(local, "rotate", *keys).returncode == 0
        rewrap = _keys(local, "rewrap", *keys, "--new-passphrase-file", str(newpass))
        assert rewrap.returncode == 0, rewrap.stderr
        source.cluster.sql("insert into marks select g, 'rotated' from generate_series(1, 300) g")
        incremental = source.backup(
            "--zstd", "--incremental", "--encryption-passphrase-file", str(newpass)
        )
        source.archive_everything()
        expected = source.cluster.table_checksums()
        bindir = source.cluster.bindir
    finally:
        source.cluster.drop()

    again = pgvault("copy", "-v", local.url, SERVER, incremental, "--to", azure.url)
    assert again.returncode == 0, again.stderr
    assert "pgvault.keys" in again.stderr and "replaced" in again.stderr, again.stderr
    assert _stored(azure)[f"{SERVER}/pgvault.keys"] == _stored(local)[f"{SERVER}/pgvault.keys"]

    # Another server's keys under the same name there: refused, that key file kept.
    assert _keys(other, "init", *keys).returncode == 0
    theirs = _stored(other)[f"{SERVER}/pgvault.keys"]
    refused = pgvault("copy", local.url, SERVER, full, "--to", other.url)
    assert refused.returncode == 1, refused.stderr
    assert "pgvault.keys" in refused.stderr and "Traceback" not in refused.stderr
    assert _stored(other)[f"{SERVER}/pgvault.keys"] == theirs

    target = new_target()
    try:
        restore(azure, target, incremental, "--encryption-passphrase-file", str(newpass))
        with restored_server(target, bindir) as server:
            _wait_promoted(server)
            assert server.table_checksums() == expected
    finally:
        target.drop()
