"""Logical backups of an encrypted server (issue 17 on issue 16's keys).

A write-only host (the key file's recipient only) takes the backup; every object it stores
is an age file, which the `age` CLI and pg_restore alone turn back into the database;
pgvault restores it with the operator identity and refuses it, in one line and exit 1,
without one or with a wrong one.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, unquote

import pytest

from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.logical import BINDIRS_ENV, SHOP, make_shop
from tests.support.postgres import Cluster

SERVER = "enc-srv"
AGE_MAGIC = b"age-encryption.org/v1\n"


@pytest.fixture
def shop(pg: Cluster) -> Cluster:
    make_shop(pg)
    return pg


def _operator(directory: Path, name: str) -> tuple[str, str]:
    """A fresh age identity file (age-keygen) and its recipient."""
    path = directory / name
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    path.chmod(0o600)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return str(path), recipient


def _restore(dest: TestDestination, pg: Cluster, *flags: str) -> subprocess.CompletedProcess[str]:
    return pgvault("restore", dest.url, SERVER, *pg.restore_flags(), *flags, env=BINDIRS_ENV)


def _databases(pg: Cluster) -> set[str]:
    return {r[0] for r in pg.sql("select datname from pg_database")}


def _unwrap(stored_keys: bytes, operator: str, work: Path) -> Path:
    """The server's data identities, as the README's recovery procedure unwraps them."""
    (work / "pgvault.keys").write_bytes(stored_keys)
    subprocess.run(  # noqa: S602 - a fixed command line, the one the README documents
        "sed -n '/^wrap: recipients/,/^-----END AGE ENCRYPTED FILE-----/p' pgvault.keys"
        " | tail -n +2 > wrap.age",
        shell=True,
        cwd=work,
        check=True,
    )
    ids = work / "ids.txt"
    subprocess.run(
        ["age", "-d", "-i", operator, "-o", str(ids), str(work / "wrap.age")], check=True
    )
    return ids


def test_write_only_host_backs_up_encrypted_and_the_identity_holder_restores(
    shop: Cluster, make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    dest = make_dest("file")
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    operator, recipient = _operator(secrets, "operator.key")
    wrong, _ = _operator(secrets, "other.key")
    keys = pgvault("keys", "init", "--encrypt-to", recipient, dest.url, SERVER)
    assert keys.returncode == 0, keys.stderr

    # The host holds no secret: the clear recipient in the key file is all it needs.
    made = pgvault(
        "backup", dest.url, SERVER, *shop.conninfo_args(), "--all-databases", "-J", "2",
        "--gzip", "-n", "nightly", env=BINDIRS_ENV,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    backup_id = made.stdout.strip()
    with dest.store() as store:
        stored = {o.key: store.get_bytes(o.key) for o in store.list_objects(f"{SERVER}/")}
    logical = {k: v for k, v in stored.items() if "/logical/" in k}
    names = {k.rsplit("/", 1)[-1] for k in logical}
    assert {"logical.json", "globals.sql", "toc.dat"} <= names
    assert any(n.endswith(".dat.gz") for n in names), names
    for key, body in logical.items():
        assert body.startswith(AGE_MAGIC), key
    assert b"sales" not in b"".join(logical.values())  # no table name in clear anywhere

    # Without the key the backup is listed, locked; by name it cannot be found.
    listed = pgvault("backup-list", dest.url, SERVER, "--format", "json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)["logical_backups"]
    assert entry["backup_id"] == backup_id and entry["status"] == "LOCKED"
    # What object names and sizes tell is shown; what only the manifest holds is null.
    dumped = {k: v for k, v in logical.items() if f"/{backup_id}/db/" in k}
    assert entry["stored_size"] == sum(len(v) for v in dumped.values())
    assert entry["compression"] == "gzip" and entry["encrypted"] is True
    held = {unquote(k.split("/db/")[1].split("/")[0]) for k in dumped}
    assert SHOP in held and sorted(entry["databases"]) == sorted(held)
    assert entry["globals"] == "globals.sql"
    for unknown in ("begin_time", "end_time", "server_version", "data_size", "tables", "name"):
        assert entry[unknown] is None, (unknown, entry)
    text = pgvault("backup-list", dest.url, SERVER)
    line = next(x for x in text.stdout.splitlines() if x.startswith(backup_id))
    assert "LOCKED" in line and "gzip+age" in line and SHOP in line, line
    assert " 0 B" not in line and "none" not in line and " all " not in line, line

    # No key, a wrong key: exit 1, one line, no database created.
    before = _databases(shop)
    for flags in ((), ("--identity-file", wrong)):
        denied = _restore(dest, shop, backup_id, "--database", SHOP, "--new-db-name", "x", *flags)
        assert denied.returncode == 1, denied.stderr
        assert len(denied.stderr.strip().splitlines()) == 1, denied.stderr
        assert "Traceback" not in denied.stderr
        assert "locked" in denied.stderr or "identity" in denied.stderr, denied.stderr
    by_name = _restore(dest, shop, "nightly", "--database", SHOP, "--new-db-name", "x")
    assert by_name.returncode == 1 and "locked" in by_name.stderr, by_name.stderr
    assert _databases(shop) == before

    # The operator identity: found by name, decrypted, restored.
    expected = shop.table_checksums(SHOP)
    done = _restore(
        dest, shop, "nightly", "--database", SHOP, "--new-db-name", "decrypted",
        "--identity-file", operator,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert shop.table_checksums("decrypted") == expected
    shown = pgvault("backup-show", dest.url, SERVER, backup_id, "--identity-file", operator)
    assert shown.returncode == 0 and "orders" in shown.stdout, shown.stderr
    manifest = json.loads(
        pgvault(
            "backup-show", dest.url, SERVER, backup_id, "--identity-file", operator,
            "--format", "json",
        ).stdout
    )  # fmt: skip
    assert manifest["stored_size"] == entry["stored_size"]  # the key changes no listed size
    verified = pgvault("verify", dest.url, SERVER, backup_id, "--identity-file", operator)
    assert verified.returncode == 0, verified.stderr
    assert "age authentication" in verified.stdout, verified.stdout
    locked = pgvault("backup-show", dest.url, SERVER, backup_id)
    assert locked.returncode == 1 and "locked" in locked.stderr, locked.stderr

    # The format outlives pgvault: age and pg_restore alone bring the database back.
    work = tmp_path / "by-hand"
    (work / "dump").mkdir(parents=True)
    ids = _unwrap(stored[f"{SERVER}/pgvault.keys"], operator, work)
    prefix = f"{SERVER}/logical/{backup_id}/db/{quote(SHOP, safe='')}/"
    for key, body in logical.items():
        if key.startswith(prefix):
            sealed = work / "sealed"
            sealed.write_bytes(body)
            out = work / "dump" / key.removeprefix(prefix)
            subprocess.run(["age", "-d", "-i", str(ids), "-o", str(out), str(sealed)], check=True)
    shop.sql('create database "by hand"')
    subprocess.run(
        [
            os.path.join(shop.bindir, "pg_restore"),
            "--no-owner", "-d", f"host={shop.sock} port={shop.port} user=postgres dbname='by hand'",
            str(work / "dump"),
        ],
        check=True,
    )  # fmt: skip
    assert shop.table_checksums("by hand") == expected

    # The key file gone (no physical backup, so no .age name to tell): refused, exit 1,
    # naming it, nothing written, instead of a backup in clear.
    keyfile = f"{SERVER}/pgvault.keys"
    with dest.store() as store:
        store.delete_many([keyfile])
        before_keys = sorted(o.key for o in store.list_objects(f"{SERVER}/"))
    keyless = pgvault(
        "backup", dest.url, SERVER, *shop.conninfo_args(), "--database", SHOP, "-n", "nokey",
        env=BINDIRS_ENV,
    )  # fmt: skip
    assert keyless.returncode == 1, keyless.stderr
    assert keyfile in keyless.stderr and "no key file" in keyless.stderr, keyless.stderr
    assert len(keyless.stderr.strip().splitlines()) == 1, keyless.stderr
    with dest.store() as store:
        assert sorted(o.key for o in store.list_objects(f"{SERVER}/")) == before_keys
        store.put_bytes(keyfile, stored[keyfile])

    # Deleting by ID reads no manifest: the write-only host can remove it without a key.
    gone = pgvault("backup-delete", dest.url, SERVER, "-b", backup_id)
    assert gone.returncode == 0, gone.stderr
    with dest.store() as store:
        assert not list(store.list_objects(f"{SERVER}/logical/"))
