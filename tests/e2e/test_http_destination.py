"""WebDAV destinations end to end, on nginx's dav module with dav-ext (PROPFIND).

A cluster archives WAL with `pgvault wal-archive` into http:// (with --cloud-provider
webdav) and davs:// (https with a CA made by the test) under basic auth, is backed up, and is
restored to a time between two sets of rows: PostgreSQL, started with an empty environment,
replays the WAL through the restore_command pgvault wrote, and exactly the rows committed
before the target are there. The password is never in a command's output or in
postgresql.auto.conf. Bad URLs, an unreachable server, a refused password and an untrusted
certificate end with barman-cloud's exit codes and one line naming the resource.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.credentials_file import StoredCredentials, write_credentials
from core.storage import StoreConfig
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.emulators import free_port
from tests.support.pitr import Source, make_source, new_target, restore, restored_server
from tests.support.postgres import wait_for_recovery_end
from tests.support.wal import WalSample
from tests.support.webdav_server import AUTH_PASSWORD, AUTH_USER, DavServer, start_nginx_dav

SERVER = "pg1"


@pytest.fixture(scope="module")
def dav() -> Iterator[DavServer]:
    server = start_nginx_dav()
    yield server
    server.stop()


def _destination(dav: DavServer, tls: bool, tree: str = "auth") -> TestDestination:
    """A new collection under /auth/ (basic auth) reached as dav:// or davs://."""
    collection = f"pgv-dav-{uuid.uuid4().hex[:10]}"
    (dav.root / tree / collection).mkdir(parents=True)
    # plain http as http:// with --cloud-provider webdav, https as davs://: both forms
    scheme, port = ("davs", dav.tls_port) if tls else ("http", dav.port)
    env = {"PGVAULT_DAV_PASSWORD": AUTH_PASSWORD}
    if tls:
        env["REQUESTS_CA_BUNDLE"] = dav.ca_file
    return TestDestination(
        "http",
        f"{scheme}://{AUTH_USER}@127.0.0.1:{port}/{tree}/{collection}/pfx",
        tree,
        StoreConfig(),
        cli_args=[] if tls else ["--cloud-provider", "webdav"],
        env=env,
        cleanup_dir=str(dav.root / tree / collection),
    )


@pytest.fixture
def sources(pgvault_bin: str) -> Iterator[Callable[[TestDestination], Source]]:
    made: list[Source] = []

    def factory(dest: TestDestination) -> Source:
        made.append(make_source(dest, pgvault_bin, scale=1))
        return made[-1]

    yield factory
    for source in made:
        source.cluster.drop()
        source.dest.drop()


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https-custom-ca"])
def test_wal_archive_backup_and_pitr_restore_over_webdav(
    tls: bool,
    dav: DavServer,
    sources: Callable[[TestDestination], Source],
    job_store_dir: str,
) -> None:
    dest = _destination(dav, tls)
    source = sources(dest)
    backup = source.backup("--gzip")
    marks = source.commit_marks()
    source.archive_everything()
    stored = Path(dest.cleanup_dir or "") / "pfx" / SERVER
    segments = [p.name for p in (stored / "wals").rglob("0000000*") if p.is_file()]
    assert any(name.endswith(".zst") for name in segments), segments  # on nginx's disk
    assert (stored / "base" / backup / "backup.info").is_file()

    listing = pgvault("backup-list", *dest.cli_args, dest.url, SERVER, env=dest.env)
    assert listing.returncode == 0, listing.stderr
    assert backup in listing.stdout

    target = new_target()
    try:
        result = restore(dest, target, backup, "--target-time", marks.time)
        assert AUTH_PASSWORD not in result.stdout + result.stderr
        conf = Path(target.data, "postgresql.auto.conf").read_text()
        assert "pgvault --batch wal-restore" in conf and AUTH_PASSWORD not in conf
        # the URL written down says WebDAV by itself; user and password are in the 0600 file
        assert f"{'davs' if tls else 'dav'}://127.0.0.1:" in conf and "--credentials-file" in conf
        with restored_server(target, source.cluster.bindir) as server:
            wait_for_recovery_end(server)
            log = server.server_log()
            assert 'restored log file "' in log
            assert "recovery stopping before commit of transaction" in log
            assert [r[0] for r in server.sql("select id from marks order by id")] == marks.before
            counts = server.one("select count(*) from pgbench_accounts")
            assert counts == source.cluster.one("select count(*) from pgbench_accounts")
    finally:
        target.drop()
    if not tls:
        _password_in_the_url_never_comes_out(source, dest, job_store_dir)


def _password_in_the_url_never_comes_out(
    source: Source, dest: TestDestination, job_store_dir: str
) -> None:
    """A backup given the password in the URL's userinfo, with -vv: not in its output, not
    in the job store, not in any object it wrote."""
    url = dest.url.replace(f"{AUTH_USER}@", f"{AUTH_USER}:{AUTH_PASSWORD}@")
    conninfo = source.cluster.conninfo_args()
    result = pgvault(
        "backup", "--immediate-checkpoint", "-vv", *conninfo, *dest.cli_args, url, SERVER
    )
    assert result.returncode == 0, result.stderr
    assert AUTH_PASSWORD not in result.stdout + result.stderr
    assert any(p.is_file() for p in Path(job_store_dir).rglob("*")), "no job recorded"
    for root in (Path(job_store_dir), Path(dest.cleanup_dir or "")):
        for path in root.rglob("*"):
            if path.is_file():
                assert AUTH_PASSWORD.encode() not in path.read_bytes(), path


def _one_line(result: object, code: int, *names: str) -> str:
    stderr = result.stderr.strip()  # type: ignore[attr-defined]
    assert result.returncode == code, (result.returncode, stderr)  # type: ignore[attr-defined]
    assert len(stderr.splitlines()) == 1 and "Traceback" not in stderr, stderr
    for name in names:
        assert name in stderr, stderr
    assert AUTH_PASSWORD not in stderr and "topsecret-pw" not in stderr
    return stderr


def test_bad_url_unreachable_refused_and_untrusted_fail_with_one_line(dav: DavServer) -> None:
    bad = pgvault("backup", "-t", "dav://u:topsecret-pw@127.0.0.1:99999/c/p", SERVER)
    _one_line(bad, 3, "invalid destination URL")
    bad = pgvault("backup", "-t", "dav://127.0.0.1:8080", SERVER)
    _one_line(bad, 3, "no bucket or container")

    dead = f"dav://u:topsecret-pw@127.0.0.1:{free_port()}/c/p"
    _one_line(
        pgvault("backup", "-t", dead, SERVER), 2, "cannot reach the WebDAV server", "127.0.0.1"
    )

    dest = _destination(dav, tls=False)
    try:
        wrong = dest.url.replace(f"{AUTH_USER}@", f"{AUTH_USER}:topsecret-pw@")
        refused = pgvault("backup", "-t", *dest.cli_args, wrong, SERVER)
        _one_line(refused, 2, "401", "access denied")
        assert "/auth/" in refused.stderr
        no_ca = dest.url.replace("http://", "davs://").replace(str(dav.port), str(dav.tls_port))
        untrusted = pgvault("backup", "-t", no_ca, SERVER, env={"PGVAULT_DAV_PASSWORD": "x" * 12})
        _one_line(untrusted, 2, "TLS certificate not trusted")
        ok = pgvault(
            "backup", "-t", no_ca, SERVER, env={**dest.env, "REQUESTS_CA_BUNDLE": dav.ca_file}
        )
        assert ok.returncode == 0, ok.stderr
    finally:
        dest.drop()


def test_the_test_server_ignores_if_none_match_so_pgvault_does_not_rely_on_it(
    dav: DavServer,
) -> None:
    """Why if_absent is a MOVE with Overwrite: F: nginx's PUT overwrites despite the header."""
    base = f"http://127.0.0.1:{dav.port}/inm-{uuid.uuid4().hex[:8]}"
    urllib.request.urlopen(urllib.request.Request(base + "/", method="MKCOL"), timeout=10)
    for body in (b"first", b"second"):
        put = urllib.request.Request(
            base + "/obj", data=body, method="PUT", headers={"If-None-Match": "*"}
        )
        urllib.request.urlopen(put, timeout=10)
    assert urllib.request.urlopen(base + "/obj", timeout=10).read() == b"second"
    shutil.rmtree(dav.root / base.rsplit("/", 1)[-1], ignore_errors=True)
    assert os.path.isdir(dav.root)


def test_wal_archive_takes_the_password_from_a_credentials_file(
    dav: DavServer, wal_sample: WalSample, pgvault_bin: str, tmp_path: Path
) -> None:
    """archive_command with no secret in it: the user in the URL, the password in the file;
    without the file the server refuses it (exit 2)."""
    dest = _destination(dav, tls=False)
    try:
        segment = wal_sample.segments[0]
        pg_wal = tmp_path / "pg_wal"
        (pg_wal / "archive_status").mkdir(parents=True)
        shutil.copy(wal_sample.path(segment), pg_wal)
        (pg_wal / "archive_status" / f"{segment}.ready").touch()
        creds = str(tmp_path / "creds.json")
        write_credentials(creds, StoredCredentials(url={"DAV_PASSWORD": AUTH_PASSWORD}))
        command = [pgvault_bin, "--batch", "wal-archive", *dest.cli_args]
        where = [dest.url, SERVER, str(pg_wal / segment)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PGVAULT_DAV")}
        refused = subprocess.run([*command, *where], capture_output=True, text=True, env=env)
        _one_line(refused, 2, "access denied")
        done = subprocess.run(
            [*command, "--credentials-file", creds, *where], capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, done.stderr
        assert AUTH_PASSWORD not in done.stdout + done.stderr
        wals = Path(dest.cleanup_dir or "") / "pfx" / SERVER / "wals"
        assert [p.name for p in wals.rglob(f"{segment}*")] == [segment]
    finally:
        dest.drop()
