"""Encryption and incremental backups together: an encrypted server's chain is encrypted.

An incremental of a server with a key file stores its changed blocks as age files
(`incremental_data.tar.zst.age`), reads its parent's encrypted pgvault.json to plan, and a
restore of the chain with the passphrase decrypts every link and replays the WAL.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.catalog.chains import kinds
from core.catalog.reader import Catalog
from tests.e2e.test_encryption import (
    AGE_MAGIC,
    PASSPHRASE,
    _keys,
    _passphrase_file,
    _wait_promoted,
)
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.pitr import SERVER, Source, make_source, new_target, restore, restored_server


@pytest.fixture
def source(make_dest: Callable[..., TestDestination], pgvault_bin: str) -> Iterator[Source]:
    made = make_source(make_dest("s3"), pgvault_bin, scale=1)
    yield made
    made.cluster.drop()


def test_an_encrypted_chain_is_encrypted_and_restores(source: Source, tmp_path: Path) -> None:
    dest = source.dest
    passfile = _passphrase_file(tmp_path)
    created = _keys(dest, "init", "--encryption-passphrase-file", passfile)
    assert created.returncode == 0, created.stderr

    full = source.backup("--zstd")
    source.cluster.sql("insert into marks select g, 'between' from generate_series(1, 300) g")
    # A host without the key falls back to a full backup, saying why; with it, an incremental.
    fallback = source.backup("--zstd", "--incremental")
    with dest.store() as store:
        info = store.get_bytes(f"{SERVER}/base/{fallback}/backup.info").decode()
    assert "parent_backup_id=None" in info
    # A wrong key, unlike none, is an error: a typo must not make every nightly incremental
    # a full backup.
    typo = _passphrase_file(tmp_path, "not the passphrase either", "typo")
    mistyped = pgvault(
        "backup",
        "--immediate-checkpoint",
        "--incremental",
        "--encryption-passphrase-file",
        typo,
        *source.cluster.conninfo_args(),
        *dest.cli_args,
        dest.url,
        SERVER,
        env=dest.env,
    )
    assert mistyped.returncode == 1, mistyped.stderr
    assert "passphrase is wrong" in mistyped.stderr and "Traceback" not in mistyped.stderr
    incremental = source.backup(
        "--zstd", "--incremental-from", full, "--encryption-passphrase-file", passfile
    )
    source.cluster.sql("insert into marks select g, 'after' from generate_series(301, 400) g")
    source.archive_everything()
    expected = source.cluster.table_checksums()

    with dest.store() as store:
        keys = [o.key for o in store.list_objects(f"{SERVER}/base/{incremental}/")]
        changed = [k for k in keys if "/incremental_data" in k]
        assert changed and all(k.endswith(".tar.zst.age") for k in changed), keys
        for key in changed:
            assert store.get_bytes(key).startswith(AGE_MAGIC), key
        info = store.get_bytes(f"{SERVER}/base/{incremental}/backup.info").decode()
    assert f"parent_backup_id={full}" in info

    # verify of the chain without the key, or with a wrong one, says that in one line (exit 1)
    # and judges nothing: no "failed verification" of a good backup that only needs its key.
    wrong = _passphrase_file(tmp_path, "not the passphrase", "wrong")
    for flags, why in (([], "locked"), (["--encryption-passphrase-file", wrong], "wrong")):
        checked = pgvault(
            "verify", *flags, *dest.cli_args, dest.url, SERVER, incremental, env=dest.env
        )
        assert checked.returncode == 1, checked.stderr
        assert len(checked.stderr.strip().splitlines()) == 1, checked.stderr
        assert why in checked.stderr and "failed verification" not in checked.stderr
    checked = pgvault(
        "verify",
        "--encryption-passphrase-file",
        passfile,
        *dest.cli_args,
        dest.url,
        SERVER,
        incremental,
        env=dest.env,
    )
    assert checked.returncode == 0, checked.stderr

    # Deleting needs no key (a write-only host runs retention): the chain comes from the
    # clear backup.info files when pgvault.json cannot be opened here.
    def delete(*args: str) -> subprocess.CompletedProcess[str]:
        return pgvault("backup-delete", *dest.cli_args, dest.url, SERVER, *args, env=dest.env)

    args = ["--format", "json", *dest.cli_args, dest.url, SERVER]
    listed = pgvault("backup-list", *args, env=dest.env)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["backups_list"]
    [entry] = [b for b in rows if b["backup_id"] == incremental]
    assert entry["pgvault"]["chain"] == [full]  # from backup.info, which needs no key

    refused = delete("-b", full, "--dry-run")
    assert refused.returncode != 0 and incremental in refused.stderr, refused.stderr
    assert "locked" not in refused.stderr
    for args in (["-b", incremental], ["-r", "REDUNDANCY 1"]):
        planned = delete(*args, "--dry-run")
        assert planned.returncode == 0, planned.stderr

    target = new_target()
    try:
        restore(dest, target, incremental, "--encryption-passphrase-file", passfile)
        with restored_server(target, source.cluster.bindir) as server:
            _wait_promoted(server)
            assert server.table_checksums() == expected
    finally:
        target.drop()


def test_an_encrypted_differential_lists_as_differential_without_the_key(
    make_dest: Callable[..., TestDestination], pgvault_bin: str, tmp_path: Path
) -> None:
    """backup-list needs no key, and the kind is no secret: a differential whose pgvault.json
    is an age file lists as a differential (its clear `annotations/kind`), in JSON and text,
    and in the console's kinds; a catalog without that record (the old code's) still lists,
    as an incremental: backup.info alone cannot tell the two apart."""
    source = make_source(make_dest("file"), pgvault_bin, scale=1)
    try:
        dest = source.dest
        passfile = _passphrase_file(tmp_path)
        created = _keys(dest, "init", "--encryption-passphrase-file", passfile)
        assert created.returncode == 0, created.stderr
        key = ("--encryption-passphrase-file", passfile)
        full = source.backup()
        source.cluster.sql("insert into marks select g, 'one' from generate_series(1, 50) g")
        incremental = source.backup("--incremental", *key)
        source.cluster.sql("insert into marks select g, 'two' from generate_series(51, 99) g")
        differential = source.backup("--differential", *key)
    finally:
        source.cluster.drop()

    def listed(keyed: bool = False) -> dict[str, str]:
        args = ["--format", "json", *dest.cli_args, dest.url, SERVER]
        env = dest.env | ({"PGVAULT_ENCRYPTION_PASSPHRASE": PASSPHRASE} if keyed else {})
        result = pgvault("backup-list", *args, env=env)
        assert result.returncode == 0, result.stderr
        return {
            b["backup_id"]: b["pgvault"]["kind"] for b in json.loads(result.stdout)["backups_list"]
        }

    expected = {full: "full", incremental: "incremental", differential: "differential"}
    assert listed(keyed=True) == expected
    assert listed() == expected  # without the key
    text = pgvault("backup-list", *dest.cli_args, dest.url, SERVER, env=dest.env)
    assert text.returncode == 0, text.stderr
    [line] = [row for row in text.stdout.splitlines() if differential in row]
    assert "differential" in line, text.stdout
    with dest.store() as store:
        catalog = Catalog(store, SERVER)
        assert kinds(catalog, catalog.backups()) == {
            incremental: "incremental",
            differential: "differential",
        }
        # A catalog the old code wrote has no clear record: it lists, the kind guessed.
        store.delete_many([f"{SERVER}/base/{differential}/annotations/kind"])
    assert listed() == expected | {differential: "incremental"}
    assert listed(keyed=True) == expected
