"""A WebDAV destination as an operator meets it, on nginx's dav module with dav-ext: a
collection that does not exist, and a backup job resumed with only the password in the
environment. Each case was found by using pgvault from outside (the happy path and the
other bad inputs are in test_http_destination.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.storage import StoreConfig
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.jobs import wait_for
from tests.support.pitr import Source, make_source, new_target, restore, restored_server
from tests.support.postgres import make_cluster, wait_for_recovery_end
from tests.support.wal import WalSample
from tests.support.webdav_server import AUTH_PASSWORD, AUTH_USER, DavServer, start_nginx_dav

SERVER = "pg1"


@pytest.fixture(scope="module")
def dav() -> Iterator[DavServer]:
    server = start_nginx_dav()
    yield server
    server.stop()


def _one_line(result: object, code: int, *names: str) -> str:
    stderr: str = result.stderr.strip()  # type: ignore[attr-defined]
    assert result.returncode == code, (result.returncode, stderr)  # type: ignore[attr-defined]
    assert len(stderr.splitlines()) == 1 and "Traceback" not in stderr, stderr
    for name in names:
        assert name in stderr, stderr
    assert AUTH_PASSWORD not in stderr
    return stderr


def test_a_missing_collection_is_named_never_an_empty_archive(
    dav: DavServer, wal_sample: WalSample, tmp_path: Path
) -> None:
    """The URL's first segment names a collection that is not there (a typo): wal-restore
    fails loudly (exit 4, as for a missing bucket) instead of answering 'not in the archive'
    (exit 1), which PostgreSQL takes for the end of the WAL and ends recovery early;
    backup-list and wal-archive name the collection instead of 'holds no server' and
    'HTTP 409 Conflict'."""
    missing = f"nope-{uuid.uuid4().hex[:8]}"
    url = f"dav://127.0.0.1:{dav.port}/{missing}/pfx"
    named = f"collection /{missing}/ on http://127.0.0.1:{dav.port} does not exist"

    segment = wal_sample.segments[0]
    restored = pgvault("wal-restore", url, SERVER, segment, str(tmp_path / "RECOVERYXLOG"))
    _one_line(restored, 4, named)
    assert not (tmp_path / "RECOVERYXLOG").exists()

    _one_line(pgvault("backup-list", url, SERVER), 1, named)

    pg_wal = tmp_path / "pg_wal"
    (pg_wal / "archive_status").mkdir(parents=True)
    shutil.copy(wal_sample.path(segment), pg_wal)
    _one_line(pgvault("wal-archive", url, SERVER, str(pg_wal / segment)), 1, named)
    assert not (dav.root / missing).exists()

    # a prefix not written yet in a collection that exists is an empty archive: exit 1
    (dav.root / missing).mkdir()
    try:
        empty = pgvault("wal-restore", url, SERVER, segment, str(tmp_path / "RECOVERYXLOG"))
        assert empty.returncode == 1, empty.stderr
        assert "does not exist" not in empty.stderr
    finally:
        shutil.rmtree(dav.root / missing, ignore_errors=True)


def _auth_destination(dav: DavServer) -> TestDestination:
    """A new collection under /auth/ (basic auth), the user in the URL, the password in the
    environment: what README recommends for archive_command."""
    collection = f"pgv-dav-{uuid.uuid4().hex[:10]}"
    (dav.root / "auth" / collection).mkdir(parents=True)
    return TestDestination(
        "http",
        f"dav://{AUTH_USER}@127.0.0.1:{dav.port}/auth/{collection}/pfx",
        "auth",
        StoreConfig(),
        env={"PGVAULT_DAV_PASSWORD": AUTH_PASSWORD},
        cleanup_dir=str(dav.root / "auth" / collection),
    )


def _job(job_id: str) -> dict[str, object]:
    shown = pgvault("jobs", "show", job_id, "--format", "json")
    assert shown.returncode == 0, shown.stderr
    loaded: dict[str, object] = json.loads(shown.stdout)
    return loaded


@pytest.fixture
def source(dav: DavServer, pgvault_bin: str) -> Iterator[Source]:
    made = make_source(_auth_destination(dav), pgvault_bin, scale=1)
    yield made
    made.cluster.drop()
    made.dest.drop()


def test_a_killed_backup_job_resumes_with_the_password_from_the_environment(
    source: Source,
) -> None:
    """A detached backup to dav://USER@host/... (password in PGVAULT_DAV_PASSWORD) is killed
    with SIGKILL; `jobs resume` finishes it. The job record kept the URL without its user, so
    the resumed job sent the password for no user: 401, exit 2, nothing resumable. The
    resumed backup restores, and PostgreSQL holds the source's rows."""
    dest = source.dest
    started = pgvault(
        "backup", "--detach", "--immediate-checkpoint", "--max-bandwidth", "1MiB",
        *source.cluster.conninfo_args(), dest.url, "pg1", env=dest.env,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    job_id = started.stdout.strip().splitlines()[-1]
    wait_for(lambda: int(str(_job(job_id).get("bytes_done") or 0)) > 2 << 20, timeout=120)
    os.kill(int(str(_job(job_id)["pid"])), signal.SIGKILL)
    wait_for(lambda: _job(job_id)["state"] == "failed", timeout=60, what="the job failed")

    # only the password comes from the environment, as for archive_command
    resumed = pgvault("jobs", "resume", job_id, env=dest.env)
    assert resumed.returncode == 0, resumed.stderr
    assert AUTH_PASSWORD not in resumed.stdout + resumed.stderr
    listing = pgvault("backup-list", "--format", "json", dest.url, "pg1", env=dest.env)
    assert listing.returncode == 0, listing.stderr
    backups = json.loads(listing.stdout)["backups_list"]
    done = [b["backup_id"] for b in backups if b["status"] == "DONE"]
    assert len(done) == 1, listing.stdout

    target = new_target()
    try:
        restore(dest, target, done[0])
        with restored_server(target, source.cluster.bindir) as server:
            wait_for_recovery_end(server)
            query = "select count(*), sum(abalance) from pgbench_accounts"
            assert server.one(query) == source.cluster.one(query)
    finally:
        target.drop()


def test_an_untrusted_certificate_says_which_variable_names_the_ca(
    dav: DavServer, tmp_path: Path
) -> None:
    """davs:// to a server whose CA this machine does not trust: the one line says where
    to name the CA (README: REQUESTS_CA_BUNDLE or SSL_CERT_FILE); a bundle that is missing
    or holds no certificate is bad input (exit 3, at once), not a connection error (exit 2,
    after six attempts with backoff) reading '[Errno 2] No such file or directory'."""
    url = f"davs://{AUTH_USER}@127.0.0.1:{dav.tls_port}/auth/pfx"
    env = {"PGVAULT_DAV_PASSWORD": AUTH_PASSWORD, "REQUESTS_CA_BUNDLE": "", "SSL_CERT_FILE": ""}
    untrusted = pgvault("backup-list", url, SERVER, env=env)
    _one_line(untrusted, 2, "TLS certificate not trusted", "REQUESTS_CA_BUNDLE or SSL_CERT_FILE")

    not_pem = tmp_path / "not-a-bundle.pem"
    not_pem.write_text("not a certificate\n")
    for bundle in (str(tmp_path / "missing.pem"), str(not_pem)):
        bad = pgvault("backup-list", url, SERVER, env={**env, "REQUESTS_CA_BUNDLE": bundle})
        _one_line(bad, 3, f"the CA bundle {bundle} (from REQUESTS_CA_BUNDLE", "cannot be used")

    trusted = pgvault("backup-list", url, SERVER, env={**env, "REQUESTS_CA_BUNDLE": dav.ca_file})
    assert trusted.returncode in (0, 1), trusted.stderr  # 1: no backups there yet
    assert "TLS" not in trusted.stderr


def test_a_server_over_quota_or_refusing_large_bodies_is_said_so(
    dav: DavServer, wal_sample: WalSample, tmp_path: Path
) -> None:
    """archive_command into a WebDAV server that answers 507 Insufficient Storage (a quota
    spent) fails at once with exit 1 saying there is no room, where it was retried six
    times as a server error and ended exit 2 'HTTP 507'; one whose body limit is below a
    WAL segment (nginx's client_max_body_size, 413) names that limit. Nothing is stored."""
    segment = wal_sample.segments[0]
    pg_wal = tmp_path / "pg_wal"
    (pg_wal / "archive_status").mkdir(parents=True)
    shutil.copy(wal_sample.path(segment), pg_wal)
    for tree, code, names in (
        ("quota", 1, ("no room for it (HTTP 507", "free space or raise the quota")),
        ("small", 1, ("HTTP 413", "client_max_body_size")),
    ):
        collection = dav.root / tree / f"c-{uuid.uuid4().hex[:8]}"
        collection.mkdir(parents=True)
        url = f"dav://127.0.0.1:{dav.port}/{tree}/{collection.name}/pfx"
        started = time.monotonic()
        archived = pgvault("wal-archive", url, SERVER, str(pg_wal / segment))
        _one_line(archived, code, f"wals/0000000100000000/{segment}", *names)
        assert time.monotonic() - started < 10, "retried as a transient error"
        assert not [p for p in collection.rglob("*") if p.is_file()]
        shutil.rmtree(collection)


def test_a_pause_longer_than_the_servers_timeouts_does_not_fail_the_backup(
    dav: DavServer, pgvault_bin: str
) -> None:
    """A WebDAV backup archive is one chunked request. A job paused longer than the server
    waits for a request body (here 3 s and kept-alive connections 2 s; nginx's
    client_body_timeout and keepalive_timeout, 60 s and 75 s by default) failed when
    resumed: the server had dropped the silent request with every part it carried. The
    upload now sends a keepalive byte after each second of silence here
    (PGVAULT_DAV_KEEPALIVE; 10 s by default): the job, paused 12 s, resumes and succeeds, and
    its backup restores and PostgreSQL starts on it with the source's rows."""
    collection = dav.root / "stall" / f"c-{uuid.uuid4().hex[:8]}"
    collection.mkdir(parents=True)
    dest = TestDestination(
        "http",
        f"dav://127.0.0.1:{dav.port}/stall/{collection.name}/pfx",
        "stall",
        StoreConfig(),
        env={"PGVAULT_DAV_KEEPALIVE": "1"},
        cleanup_dir=str(collection),
    )
    source = make_source(dest, pgvault_bin, scale=1)
    try:
        started = pgvault(
            "backup", "--detach", "--immediate-checkpoint", "--max-bandwidth", "1MiB",
            *source.cluster.conninfo_args(), dest.url, SERVER, env=dest.env,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        job_id = started.stdout.strip().splitlines()[-1]
        wait_for(lambda: int(str(_job(job_id).get("bytes_done") or 0)) > 2 << 20, timeout=120)
        paused = pgvault("jobs", "pause", job_id, "--wait", "--timeout", "10")
        assert paused.returncode == 0, paused.stderr
        time.sleep(12)  # four times the server's body timeout
        assert _job(job_id)["state"] == "paused"
        assert pgvault("jobs", "resume", job_id).returncode == 0
        wait_for(
            lambda: _job(job_id)["state"] in ("succeeded", "failed"),
            timeout=300,
            what="the job ended",
        )
        job = _job(job_id)
        assert job["state"] == "succeeded", job.get("error")
        listing = pgvault("backup-list", "--format", "json", dest.url, SERVER)
        backups = json.loads(listing.stdout)["backups_list"]
        assert [b["status"] for b in backups] == ["DONE"], listing.stdout

        target = new_target()
        try:
            restore(dest, target, backups[0]["backup_id"])
            with restored_server(target, source.cluster.bindir) as server:
                wait_for_recovery_end(server)
                query = "select count(*), sum(abalance) from pgbench_accounts"
                assert server.one(query) == source.cluster.one(query)
        finally:
            target.drop()
    finally:
        source.cluster.drop()
        dest.drop()


def test_an_upload_refused_at_its_end_names_the_servers_answer(
    dav: DavServer, small_disk: Callable[[str], str]
) -> None:
    """nginx whose disk fills during a backup archive answers the chunked PUT 500 once the
    body is in. That was taken for a transient error: the retried completion found no
    object and the backup failed with 'complete .../data.tar: not found', hiding the
    cause. Now it fails (exit 1, FAILED, never DONE) naming the server's answer."""
    disk = small_disk("6m")  # an empty cluster's archive is over 20 MiB
    name = f"full-{uuid.uuid4().hex[:8]}"
    (dav.root / name).symlink_to(disk)
    url = f"dav://127.0.0.1:{dav.port}/{name}/pfx"
    cluster = make_cluster()
    try:
        failed = pgvault(
            "backup", "--no-wal-check", "--immediate-checkpoint", *cluster.conninfo_args(),
            url, SERVER,
        )  # fmt: skip
        assert failed.returncode == 1, failed.stderr
        assert "data.tar: the server refused the upload once it was sent (HTTP 500" in (
            failed.stderr
        )
        assert "not found" not in failed.stderr and "Traceback" not in failed.stderr
        listing = pgvault("backup-list", "--format", "json", url, SERVER)
        statuses = [b["status"] for b in json.loads(listing.stdout)["backups_list"]]
        assert statuses == ["FAILED"], listing.stdout
    finally:
        cluster.drop()
        (dav.root / name).unlink()


def test_an_http_url_with_webdav_credentials_and_no_provider_says_how_to_name_webdav(
    dav: DavServer,
) -> None:
    """http://USER:PASSWORD@host/collection without --cloud-provider webdav was read as an
    Azure emulator: the credentials dropped, it ended exit 2 on 'no credentials for Azure
    account auth over http' (or, over https, azure-identity's page-long warning and
    'access denied (None)'). It is bad input now, saying what to write, without the
    password."""
    for scheme, port in (("http", dav.port), ("https", dav.tls_port)):
        url = f"{scheme}://{AUTH_USER}:{AUTH_PASSWORD}@127.0.0.1:{port}/auth/pfx"
        told = pgvault("backup-list", url, SERVER)
        _one_line(told, 3, "carries WebDAV credentials", "--cloud-provider webdav", "dav://")
    ok = pgvault(
        "backup-list", "--cloud-provider", "webdav",
        f"http://{AUTH_USER}:{AUTH_PASSWORD}@127.0.0.1:{dav.port}/auth/pfx", SERVER,
    )  # fmt: skip
    assert ok.returncode == 1 and "has no backups" in ok.stdout + ok.stderr, ok.stderr


def test_a_server_asking_for_a_password_none_was_given_says_where_to_put_it(
    dav: DavServer, tmp_path: Path
) -> None:
    """archive_command or restore_command run without the password (PostgreSQL started
    from a shell without PGVAULT_DAV_PASSWORD): 'access denied (HTTP 401 Unauthorized)'
    read as if the password were wrong. With no credentials at all the line now says none
    was given and where they go; a wrong one keeps 'access denied'. Exit 2 both."""
    url = f"dav://127.0.0.1:{dav.port}/auth/pfx"
    bare = {"PGVAULT_DAV_PASSWORD": "", "PGVAULT_DAV_USER": ""}
    for args in (
        ("backup-list", url, SERVER),
        ("wal-restore", url, SERVER, "000000010000000000000001", str(tmp_path / "x")),
    ):
        _one_line(
            pgvault(*args, env=bare), 2, "asks for a user and password", "PGVAULT_DAV_PASSWORD"
        )
    wrong = pgvault("backup-list", url.replace("://", f"://{AUTH_USER}@"), SERVER,
                    env={"PGVAULT_DAV_PASSWORD": "not-the-password"})  # fmt: skip
    assert "asks for" not in _one_line(wrong, 2, "access denied (HTTP 401")
