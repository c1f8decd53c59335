"""Client-side encryption end to end (issue 16): a server with a key file in the store.

Every object written for it is an age v1 file (backup.info and the key file aside), the
standard `age` CLI opens them with the identities unwrapped from the key file, barman-cloud
refuses the backup instead of restoring ciphertext, and pgvault restores and replays it
with the passphrase or an operator identity, never leaking either.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.credentials_file import StoredCredentials, write_credentials
from core.crypto.passphrase import PASSPHRASE_ENV
from core.encryption import DATA_IDENTITY_ENV, IDENTITY_ENV
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.pitr import Source, make_source, new_target, restore, restored_server
from tests.support.postgres import Cluster, chown_tree
from tests.support.restore import run_barman

SERVER = "pg1"
PASSPHRASE = "correct horse battery staple 7f3c"
AGE_MAGIC = b"age-encryption.org/v1\n"
CLEAR = ("backup.info", "pgvault.keys")


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "secrets"
    directory.mkdir(mode=0o700)
    return directory


def _passphrase_file(directory: Path, text: str = PASSPHRASE, name: str = "pass") -> str:
    path = directory / name
    path.write_text(text + "\n")
    path.chmod(0o600)
    return str(path)


def _operator(directory: Path, name: str = "operator.key") -> tuple[str, str]:
    """A fresh age identity file (age-keygen) and its recipient."""
    path = directory / name
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    path.chmod(0o600)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return str(path), recipient


def _keys(dest: TestDestination, *args: str) -> subprocess.CompletedProcess[str]:
    result = pgvault("keys", *args, *dest.cli_args, dest.url, SERVER, env=dest.env)
    if dest.provider == "file" and args[0] != "show":
        # Created by root here; archive_command (postgres) reads it and adds wals/ beside it.
        chown_tree(dest.url.removeprefix("file://"))
    return result


@pytest.fixture
def sources(pgvault_bin: str) -> Iterator[Callable[[TestDestination], Source]]:
    made: list[Source] = []

    def factory(dest: TestDestination) -> Source:
        made.append(make_source(dest, pgvault_bin, scale=1))
        return made[-1]

    yield factory
    for source in made:
        source.cluster.drop()


def _wait_promoted(server: Cluster, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # still starting or replaying
            if not server.one("select pg_is_in_recovery()"):
                return
        time.sleep(0.3)
    raise AssertionError(f"not promoted:\n{server.server_log()[-4000:]}")


def _stored(dest: TestDestination) -> dict[str, bytes]:
    with dest.store() as store:
        return {o.key: store.get_bytes(o.key) for o in store.list_objects("")}


def _no_secret(texts: list[str], state_dir: str, *secrets: str) -> None:
    for secret in secrets:
        for text in texts:
            assert secret not in text
        for path in Path(state_dir).rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path


def _keep_only_the_data_keys(wal_dir: str) -> None:
    """restore_command's credentials file (0600) carries the data keys the restore unlocked:
    left with those alone, no passphrase, every wal-restore must open the WAL with them."""
    path = os.path.join(wal_dir, "credentials.json")
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600
    document = json.loads(Path(path).read_text())
    environment = document["environment"]
    assert {PASSPHRASE_ENV, DATA_IDENTITY_ENV} <= set(environment)
    kept = {k: v for k, v in environment.items() if k not in (PASSPHRASE_ENV, IDENTITY_ENV)}
    stored = StoredCredentials(document["url"], kept)
    write_credentials(path, stored, st.st_uid, st.st_gid)


def test_encrypted_backup_and_wal_restored_by_pgvault_and_by_the_age_cli(
    make_dest: Callable[..., TestDestination],
    sources: Callable[[TestDestination], Source],
    secrets_dir: Path,
    tmp_path: Path,
) -> None:
    dest = make_dest("s3")
    passfile = _passphrase_file(secrets_dir)
    operator, recipient = _operator(secrets_dir)
    outputs: list[str] = []
    created = _keys(
        dest, "init", "--encryption-passphrase-file", passfile, "--encrypt-to", recipient
    )
    assert created.returncode == 0, created.stderr
    outputs += [created.stdout, created.stderr]
    assert "generation 1" in created.stdout and recipient in created.stdout

    source = sources(dest)
    backup_id = source.backup("--lz4")
    source.cluster.sql(
        "insert into marks select g, 'after the backup' from generate_series(1, 500) g"
    )
    source.archive_everything()
    expected = source.cluster.table_checksums()

    stored = _stored(dest)
    parts = [k for k in stored if "/base/" in k and ".tar" in k]
    assert parts and all(k.endswith(".tar.lz4.age") for k in parts), parts
    wals = [k for k in stored if "/wals/" in k]
    assert wals
    for key, body in stored.items():
        if key.rsplit("/", 1)[-1] not in CLEAR:
            assert body.startswith(AGE_MAGIC), key
    assert not stored[f"{SERVER}/base/{backup_id}/backup.info"].startswith(AGE_MAGIC)

    # barman-cloud does not restore ciphertext as data: it stops, naming the missing archive.
    refused = run_barman(
        "restore", dest, dest.url, SERVER, backup_id, str(tmp_path / "barman"), check=False
    )
    assert refused.returncode != 0
    assert not (tmp_path / "barman" / "PG_VERSION").exists()

    # pgvault restores it with the passphrase; restore_command decrypts the WAL.
    target = new_target()
    try:
        result = restore(dest, target, backup_id, "--encryption-passphrase-file", passfile)
        outputs += [result.stdout, result.stderr]
        _keep_only_the_data_keys(target.wal_dir)
        with restored_server(target, source.cluster.bindir) as server:
            _wait_promoted(server)
            assert server.table_checksums() == expected
            outputs.append(server.server_log())
    finally:
        target.drop()

    # The README recovery procedure: the age CLI alone, with the operator identity.
    work = tmp_path / "by-hand"
    work.mkdir()
    (work / "pgvault.keys").write_bytes(stored[f"{SERVER}/pgvault.keys"])
    subprocess.run(  # noqa: S602 - a fixed command line, the one the README documents
        "sed -n '/^wrap: recipients/,/^-----END AGE ENCRYPTED FILE-----/p' pgvault.keys"
        " | tail -n +2 > wrap.age",
        shell=True,
        cwd=work,
        check=True,
    )
    age = ["age", "-d", "-i"]
    subprocess.run(
        [*age, operator, "-o", str(work / "ids.txt"), str(work / "wrap.age")], check=True
    )
    segment_key = next(k for k in wals if len(k.rsplit("/", 1)[-1]) == len("0" * 24 + ".zst"))
    (work / "seg.zst.age").write_bytes(stored[segment_key])
    subprocess.run(
        [*age, str(work / "ids.txt"), "-o", str(work / "seg.zst"), str(work / "seg.zst.age")],
        check=True,
    )
    subprocess.run(["zstd", "-q", "-d", str(work / "seg.zst"), "-o", str(work / "seg")], check=True)
    assert (work / "seg").stat().st_size == 16 * 1024 * 1024
    data_key = next(k for k in parts if k.endswith("/data.tar.lz4.age"))
    (work / "data.tar.lz4.age").write_bytes(stored[data_key])
    subprocess.run(
        [
            *age,
            str(work / "ids.txt"),
            "-o",
            str(work / "data.tar.lz4"),
            str(work / "data.tar.lz4.age"),
        ],
        check=True,
    )
    subprocess.run(
        ["lz4", "-q", "-d", str(work / "data.tar.lz4"), str(work / "data.tar")], check=True
    )
    with tarfile.open(work / "data.tar") as tar:
        assert "PG_VERSION" in tar.getnames()

    _no_secret(outputs, os.environ["PGVAULT_STATE_DIR"], PASSPHRASE)
    identity = Path(operator).read_text().split("AGE-SECRET-KEY-", 1)[1].split()[0]
    _no_secret(outputs, os.environ["PGVAULT_STATE_DIR"], identity)


def test_write_only_host_backs_up_and_only_the_identity_holder_restores(
    make_dest: Callable[..., TestDestination],
    sources: Callable[[TestDestination], Source],
    secrets_dir: Path,
) -> None:
    dest = make_dest("file")
    operator, recipient = _operator(secrets_dir)
    assert _keys(dest, "init", "--encrypt-to", recipient).returncode == 0
    source = sources(dest)
    backup_id = source.backup()  # the host holds no secret at all
    source.archive_everything()
    expected = source.cluster.table_checksums()

    target = new_target()
    try:
        denied = restore(dest, target, backup_id, check=False)
        assert denied.returncode == 1, denied.stderr
        assert "Traceback" not in denied.stderr
        assert len(denied.stderr.strip().splitlines()) == 1, denied.stderr
        assert "locked" in denied.stderr and "operator identity" in denied.stderr
        assert not os.path.exists(os.path.join(target.data, "PG_VERSION"))

        restore(dest, target, backup_id, "--identity-file", operator)
        with restored_server(target, source.cluster.bindir) as server:
            _wait_promoted(server)
            assert server.table_checksums() == expected
    finally:
        target.drop()

    # The key file deleted (by mistake, or to get the next backups in clear): the host
    # refuses to back up this server in plaintext, physical or logical, and writes nothing.
    with dest.store() as store:
        store.delete_many([f"{SERVER}/pgvault.keys"])
        before = sorted(o.key for o in store.list_objects(f"{SERVER}/"))
    for logical in ([], ["--database", "postgres"]):
        refused = pgvault(
            "backup",
            *logical,
            *source.cluster.conninfo_args(),
            *dest.cli_args,
            dest.url,
            SERVER,
            env=dest.env,
        )
        assert refused.returncode == 1, refused.stderr
        assert "has encrypted backups" in refused.stderr and "no key file" in refused.stderr
        assert "Traceback" not in refused.stderr
    with dest.store() as store:
        after = sorted(o.key for o in store.list_objects(f"{SERVER}/"))
    assert [k for k in after if "/wals/" not in k] == [k for k in before if "/wals/" not in k]


def test_rotation_keeps_old_backups_restorable_and_bad_keys_fail_cleanly(
    make_dest: Callable[..., TestDestination],
    sources: Callable[[TestDestination], Source],
    secrets_dir: Path,
) -> None:
    dest = make_dest("file")
    passfile = _passphrase_file(secrets_dir)
    source = sources(dest)
    clear = source.backup()  # taken before the key file: stays clear
    assert _keys(dest, "init", "--encryption-passphrase-file", passfile).returncode == 0
    before = source.backup()

    rotated = _keys(dest, "rotate", "--encryption-passphrase-file", passfile)
    assert rotated.returncode == 0, rotated.stderr
    assert "generation 2" in rotated.stdout
    after = source.backup()
    newpass = _passphrase_file(secrets_dir, "a new passphrase 91ab", "newpass")
    rewrapped = _keys(
        dest, "rewrap", "--encryption-passphrase-file", passfile, "--new-passphrase-file", newpass
    )
    assert rewrapped.returncode == 0, rewrapped.stderr
    shown = _keys(dest, "show")
    assert shown.returncode == 0 and "generation 2" in shown.stdout
    assert PASSPHRASE not in shown.stdout

    outputs: list[str] = []
    for backup_id in (before, after):
        target = new_target()
        try:
            done = restore(dest, target, backup_id, "--encryption-passphrase-file", newpass)
            outputs += [done.stdout, done.stderr]
            assert os.path.exists(os.path.join(target.data, "PG_VERSION"))
        finally:
            target.drop()

    # verify and backup-show read the encrypted manifests, parts and WAL with the key.
    for backup_id in (before, after):
        verified = pgvault(
            "verify", "--encryption-passphrase-file", newpass, dest.url, SERVER, backup_id
        )
        outputs += [verified.stdout, verified.stderr]
        assert verified.returncode == 0, verified.stdout + verified.stderr
    shown = pgvault("backup-show", "--encryption-passphrase-file", newpass, dest.url, SERVER, after)
    assert shown.returncode == 0, shown.stderr
    locked = pgvault("backup-show", dest.url, SERVER, after)
    assert locked.returncode == 1 and "locked" in locked.stderr, locked.stderr
    # backup-list needs no key, and says which backups are encrypted (from their names).
    listed = pgvault("backup-list", dest.url, SERVER)
    assert listed.returncode == 0, listed.stderr
    lines = {
        b: next(line for line in listed.stdout.splitlines() if b in line)
        for b in (clear, before, after)
    }
    assert "+age" not in lines[clear] and "none+age" in lines[before] and "+age" in lines[after]
    listed = pgvault("backup-list", "--format", "json", dest.url, SERVER)
    entries = json.loads(listed.stdout)["backups_list"]
    assert {e["backup_id"]: e["pgvault"]["encrypted"] for e in entries} == {
        clear: False,
        before: True,
        after: True,
    }

    # The old passphrase no longer opens the key file: exit 1, one line, nothing written.
    target = new_target()
    try:
        wrong = restore(dest, target, after, "--encryption-passphrase-file", passfile, check=False)
        outputs += [wrong.stdout, wrong.stderr]
        assert wrong.returncode == 1, wrong.stderr
        assert "passphrase is wrong" in wrong.stderr
        assert "Traceback" not in wrong.stderr
        assert len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr
        assert not os.path.exists(os.path.join(target.data, "PG_VERSION"))
    finally:
        target.drop()

    # A passphrase on argv is refused without being repeated.
    refused = pgvault(
        "restore", "--encryption-passphrase", PASSPHRASE, dest.url, SERVER, after, "/nowhere"
    )
    assert refused.returncode == 3
    outputs += [refused.stdout, refused.stderr]
    _no_secret(outputs, os.environ["PGVAULT_STATE_DIR"], PASSPHRASE, "a new passphrase 91ab")


def test_a_backup_from_before_keys_init_restored_without_a_key_warns_that_its_wal_needs_one(
    make_dest: Callable[..., TestDestination],
    sources: Callable[[TestDestination], Source],
    secrets_dir: Path,
) -> None:
    dest = make_dest("file")
    source = sources(dest)
    plain = source.backup()
    passfile = _passphrase_file(secrets_dir)
    assert _keys(dest, "init", "--encryption-passphrase-file", passfile).returncode == 0
    source.cluster.sql("insert into marks select g, 'sealed' from generate_series(1, 10) g")
    source.archive_everything()  # WAL after keys init: sealed

    target = new_target()
    try:
        keyless = restore(dest, target, plain)
        [warning] = [line for line in keyless.stderr.splitlines() if line.startswith("WARNING")]
        assert "encrypts its WAL since its key file was made" in warning
        assert "--encryption-passphrase-file" in warning
        shutil.rmtree(target.base)
        keyed = restore(dest, target, plain, "--encryption-passphrase-file", passfile)
        assert "WARNING" not in keyed.stderr
        with restored_server(target, source.cluster.bindir) as server:
            _wait_promoted(server)
            assert server.one("select count(*) from marks where phase = 'sealed'") == 10
    finally:
        target.drop()
