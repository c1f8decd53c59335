"""A key given to `backup` is checked, not ignored (issue 16).

A backup is encrypted by the server's key file (`keys init`), never by a passphrase alone:
a passphrase file given for a server without one would leave the operator believing the
backup is encrypted while it is written in clear, so it is refused (exit 3). A passphrase or
identity that does not open the key file fails the backup before anything is written
(exit 1), as it fails a restore. The right one takes the backup.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster

SERVER = "pg1"


def _secret(directory: Path, name: str, text: str) -> str:
    path = directory / name
    path.write_text(text + "\n")
    path.chmod(0o600)
    return str(path)


def _identity(directory: Path) -> str:
    path = directory / "other.key"
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    path.chmod(0o600)
    return str(path)


def _backup(pg: Cluster, dest: TestDestination, *flags: str) -> subprocess.CompletedProcess[str]:
    return pgvault(
        "backup", "--no-wal-check", *flags, *pg.conninfo_args(), *dest.cli_args, dest.url, SERVER,
        env=dest.env,
    )  # fmt: skip


def _objects(dest: TestDestination) -> list[str]:
    with dest.store() as store:
        return sorted(o.key for o in store.list_objects(f"{SERVER}/"))


@pytest.mark.parametrize("logical", [False, True], ids=["physical", "logical"])
def test_a_key_given_to_backup_must_open_the_servers_key_file(
    pg: Cluster, make_dest: Callable[..., TestDestination], tmp_path: Path, logical: bool
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    right = _secret(secrets, "right", "the right passphrase 5b0e")
    wrong = _secret(secrets, "wrong", "a wrong passphrase 77c1")
    dest = make_dest("file")
    kind = ("--database", "postgres") if logical else ()

    clear = _backup(pg, dest, *kind, "--encryption-passphrase-file", right)
    assert clear.returncode == 3, clear.stderr
    assert "has no key file" in clear.stderr and "keys init" in clear.stderr, clear.stderr
    assert len(clear.stderr.strip().splitlines()) == 1, clear.stderr
    assert _objects(dest) == []

    initialised = pgvault(
        "keys", "init", "--encryption-passphrase-file", right, dest.url, SERVER, env=dest.env
    )
    assert initialised.returncode == 0, initialised.stderr
    keyfile_only = _objects(dest)
    for flag, path in [
        ("--encryption-passphrase-file", wrong),
        ("--identity-file", _identity(secrets)),
    ]:
        refused = _backup(pg, dest, *kind, flag, path)
        assert refused.returncode == 1, (flag, refused.stderr)
        assert "Traceback" not in refused.stderr and "wrong passphrase" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert _objects(dest) == keyfile_only, flag

    taken = _backup(pg, dest, *kind, "--encryption-passphrase-file", right)
    assert taken.returncode == 0, taken.stderr
    assert _objects(dest) != keyfile_only
