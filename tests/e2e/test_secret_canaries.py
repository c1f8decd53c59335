"""Canary secrets in every form pgvault is given them never come out anywhere.

A canary is given as an environment variable (S3 keys and session token, the encryption
passphrase), in a URL's query string, as a PostgreSQL password in a connection string, in
a credentials file (archive_command's) and in an Azure connection string. Every command
then runs with -vv (the SDKs' own debug logging too), a detached `keys rotate` among them;
its output, the job store (the detached job's worker log too), the server logs, the
spool's pusher log, every object written to the bucket, the restored data directory
(postgresql.auto.conf) and `ps` sampled while they run must not hold any of them.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from core.credentials_file import StoredCredentials, write_credentials
from tests.support.destinations import TestDestination
from tests.support.emulators import AZURITE_KEY
from tests.support.pitr import SERVER, new_target, restored_server
from tests.support.postgres import PG_USER, Cluster, world_dir
from tests.support.wal import (
    WalSample,
    archive_command,
    pgvault_run,
    private_parent,
    stop_pushers,
    wait_for,
)

CANARY = "cAnArY"
ENV_KEY = f"{CANARY}-env-secret-key/+=1"
ENV_TOKEN = f"{CANARY}-env-session-token+/=2"
URL_KEY = f"{CANARY}-url-secret/+=3"
FILE_KEY = f"{CANARY}-file-secret/+=4"
FILE_TOKEN = f"{CANARY}-file-token=5"
PG_PASSWORD = f"{CANARY}-pg-password-6"
PASSPHRASE = f"{CANARY} passphrase 7"


class PsSampler:
    """`ps` of every process but the test's own pgvault invocations, sampled in a thread."""

    def __init__(self) -> None:
        self.lines: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            ps = subprocess.run(["ps", "-eo", "user:20,args", "ww"], capture_output=True, text=True)
            for line in ps.stdout.splitlines():
                # The test passes URL canaries on its own command lines on purpose: what
                # pgvault starts (pusher, job workers) and PostgreSQL runs must not show them.
                if line.startswith(PG_USER) or "core.wal.daemon" in line or "core.jobs" in line:
                    self.lines.add(line)

    def __enter__(self) -> PsSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _url_with(url: str, key_id: str, secret: str) -> str:
    return f"{url}?AWS_ACCESS_KEY_ID={key_id}&AWS_SECRET_ACCESS_KEY={quote(secret, safe='')}"


def _credentials_file(directory: str) -> str:
    path = os.path.join(directory, "archive-credentials.json")
    user = pwd.getpwnam(PG_USER)
    stored = StoredCredentials(
        url={"AWS_ACCESS_KEY_ID": "AKIDFILE", "AWS_SECRET_ACCESS_KEY": FILE_KEY},
        environment={"AWS_SESSION_TOKEN": FILE_TOKEN},
    )
    write_credentials(path, stored, user.pw_uid, user.pw_gid)
    return path


def _files_under(*roots: str, skip: Callable[[str], bool] = lambda _: False) -> Iterator[str]:
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                path = os.path.join(directory, name)
                if not skip(path) and os.path.isfile(path) and not os.path.islink(path):
                    yield path


def _hits(texts: dict[str, str | bytes]) -> list[str]:
    return [where for where, text in texts.items() if CANARY.encode() in _bytes(text)]


def _bytes(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode(errors="replace")


def _pg_wal_with(sample: WalSample, segment: str) -> str:
    """A pg_wal-like directory holding `segment` (the --async path checks where %p is)."""
    pg_wal = os.path.join(world_dir("pgvault-canary-wal-"), "pg_wal")
    os.makedirs(os.path.join(pg_wal, "archive_status"))
    shutil.copy(sample.path(segment), pg_wal)
    Path(pg_wal, "archive_status", f"{segment}.ready").touch()
    return os.path.join(pg_wal, segment)


@pytest.fixture
def spool(scratch_dirs: Callable[[str], str]) -> Iterator[str]:
    root = private_parent(scratch_dirs)  # wal-archive runs as this user: its spool too
    yield root
    stop_pushers(root)


def test_no_canary_secret_leaves_pgvault(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    wal_sample: WalSample,
    spool: str,
    job_store_dir: str,
) -> None:
    dest = make_dest("s3")
    outputs: dict[str, str | bytes] = {}
    env = {
        **dest.env,
        "AWS_SECRET_ACCESS_KEY": ENV_KEY,
        "AWS_SESSION_TOKEN": ENV_TOKEN,
        "PGVAULT_ENCRYPTION_PASSPHRASE": PASSPHRASE,
    }

    def run(name: str, *args: str, expect: int = 0) -> str:
        done = pgvault_run(pgvault_bin, *args, env=env)
        outputs[f"{name} stdout"], outputs[f"{name} stderr"] = done.stdout, done.stderr
        assert done.returncode == expect, f"{name}: {done.stderr[-3000:]}"
        return done.stdout

    cloud = [*dest.cli_args, "-vv"]
    with PsSampler() as ps:
        run("keys init", "keys", "init", *cloud, dest.url, SERVER)
        # A detached key change: its process gets the passphrase through its pipe.
        rotation = run("keys rotate", "keys", "rotate", "--detach", *cloud, dest.url, SERVER)

        def rotated() -> bool:
            shown = json.loads(
                run("jobs show", "jobs", "show", rotation.strip(), "--format", "json")
            )
            assert shown["state"] not in ("failed", "cancelled"), shown
            return bool(shown["state"] == "succeeded")

        wait_for(rotated, timeout=120)
        credentials = _credentials_file(world_dir("pgvault-canary-creds-"))
        archiving = ["--zstd", "--credentials-file", credentials, "-vv"]
        source = cluster_factory(
            archive_command=archive_command(pgvault_bin, dest.url, *dest.cli_args, *archiving),
            env=dest.env,
        )
        source.sql(
            "create table t as select g as id, md5(g::text) as v from generate_series(1, 5000) g"
        )
        conninfo = f"{source.dsn} password={PG_PASSWORD}"
        backup_id = run(
            "backup", "backup", "--immediate-checkpoint", "-d", conninfo, *cloud, dest.url, SERVER
        ).strip()
        source.sql("insert into t select g, 'after' from generate_series(5001, 6000) g")
        segment = source.one("select pg_walfile_name(pg_current_wal_lsn())")
        source.sql("select pg_switch_wal()")
        source.wait_archived(segment, timeout=180)
        run("backup-list", "backup-list", *cloud, dest.url, SERVER)
        # It checks that the archive is empty (for a new server): a failure, said plainly.
        run("check-wal-archive", "check-wal-archive", *cloud, dest.url, SERVER, expect=1)
        run("backup-show", "backup-show", *cloud, dest.url, SERVER, backup_id)
        run("verify", "verify", *cloud, dest.url, SERVER, backup_id)
        run("jobs", "jobs", "list", "--format", "json")

        # The URL form, in both wal-archive paths and in wal-restore.
        url = _url_with(dest.url, "AKIDURL", URL_KEY)
        first, second = wal_sample.segments[:2]
        run("wal-archive", "wal-archive", *cloud, url, "other", wal_sample.path(first))
        assert "carries credentials (AWS_SECRET_ACCESS_KEY)" in outputs["wal-archive stderr"]
        fast = ["--async", "--spool-dir", spool]
        pg_wal = _pg_wal_with(wal_sample, second)
        run("wal-archive --async", "wal-archive", *cloud, *fast, url, "other", pg_wal)
        fetched = os.path.join(world_dir("pgvault-canary-fetch-"), "segment")
        run("wal-restore", "wal-restore", *cloud, url, "other", first, fetched)

        target = new_target()
        run("restore", "restore", *cloud, dest.url, SERVER, backup_id, target.data)
        with restored_server(target, source.bindir) as server:
            wait_for(lambda: server.one("select not pg_is_in_recovery()"), timeout=180)
            assert server.one("select count(*) from t") == 6000
            outputs["restored server log"] = server.server_log()
        run("backup-delete", "backup-delete", *cloud, dest.url, SERVER, "-b", backup_id)

    outputs["source server log"] = source.server_log()
    outputs["ps"] = "\n".join(sorted(ps.lines))
    with dest.store() as store:
        for info in store.list_objects(""):
            outputs[f"object {info.key}"] = store.get_bytes(info.key)
    files = _files_under(
        job_store_dir,
        spool,
        target.data,
        target.wal_dir,
        # restore's own 0600 credentials file for restore_command holds them by design
        skip=lambda path: path.endswith("credentials.json"),
    )
    for path in files:
        outputs[path] = Path(path).read_bytes()
    assert "postgresql.auto.conf" in " ".join(outputs)
    assert _hits(outputs) == []


def test_no_azure_account_key_leaves_pgvault(
    make_dest: Callable[..., TestDestination], wal_sample: WalSample, pgvault_bin: str
) -> None:
    dest = make_dest("azure")
    assert AZURITE_KEY in dest.env["AZURE_STORAGE_CONNECTION_STRING"]
    texts: dict[str, str | bytes] = {}
    for args in (
        ["wal-archive", wal_sample.path(wal_sample.segments[0])],
        ["backup-list"],
        ["check-wal-archive"],
    ):
        command, rest = args[0], args[1:]
        where = [dest.url, SERVER, *rest]
        done = pgvault_run(pgvault_bin, command, *dest.cli_args, "-vv", *where, env=dest.env)
        assert done.returncode in (0, 1), done.stderr[-3000:]
        assert "DEBUG" in done.stderr  # the SDK's own details were asked for and shown
        texts[command] = done.stdout + done.stderr
    key_forms = {AZURITE_KEY, quote(AZURITE_KEY, safe="")}
    assert [c for c, t in texts.items() if any(k in _text(t) for k in key_forms)] == []


def _text(text: str | bytes) -> str:
    return text if isinstance(text, str) else text.decode(errors="replace")
