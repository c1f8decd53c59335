"""`pgvault --batch restore` end to end: tablespaces, verification, refusals, damaged archives,
backups written by barman-cloud, credentials kept out of postgresql.auto.conf, detached jobs.

Every restored directory is started with PostgreSQL as postgres and an empty environment
(restore_command has only what the restore wrote for it) and its tables compared with the
source's.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.catalog.reader import Catalog
from core.postgres.walnames import segment_range
from tests.support.cli import PGVAULT
from tests.support.destinations import TestDestination, make_destination
from tests.support.emulators import Emulator
from tests.support.jobs import show, wait_for
from tests.support.pitr import (
    SERVER,
    Source,
    Target,
    make_source,
    new_target,
    restore,
    restored_server,
    wait_log,
)
from tests.support.postgres import Cluster, wait_for_recovery_end
from tests.support.restore import run_barman
from tests.support.sample import UNLOGGED, checksums, populate
from tests.support.wal import pgvault_run

MARK = "PGVAULT-TEST-SECRET-"  # every test credential contains it: grep for it anywhere


@dataclass
class Sample:
    source: Source
    backup: str
    tables: dict[str, dict[str, tuple[int, str]]]

    @property
    def cluster(self) -> Cluster:
        return self.source.cluster


@pytest.fixture(scope="module")
def sample(pgvault_bin: str) -> Iterator[Sample]:
    """A cluster with two tablespaces archiving through pgvault to a local directory."""
    dest = make_destination("file", {})
    source = make_source(dest, pgvault_bin, scale=1)
    try:
        populate(source.cluster, rows=5000)
        backup = source.backup("--zstd")
        source.archive_everything()
        yield Sample(source, backup, checksums(source.cluster))
    finally:
        source.cluster.drop()
        dest.drop()


@pytest.fixture
def target() -> Iterator[Target]:
    made = new_target()
    yield made
    made.drop()


def _promoted(server: Cluster) -> None:
    wait_for_recovery_end(server)
    wait_log(server, "archive recovery complete")


def _owner(path: str) -> str:
    return pwd.getpwuid(os.lstat(path).st_uid).pw_name


def test_tablespaces_are_relocated_and_the_directory_verifies(
    sample: Sample, target: Target, pgvault_bin: str
) -> None:
    ts1, ts2 = os.path.join(target.base, "new-ts1"), os.path.join(target.base, "new-ts2")
    # Without relocation the original locations (the source's, in use) are refused.
    refused = restore(sample.source.dest, target, sample.backup, check=False)
    assert refused.returncode == 3, refused.stderr
    assert "is not empty" in refused.stderr and refused.stderr.count("\n") == 1
    assert not os.path.exists(target.data) and not os.path.exists(target.wal_dir)

    result = restore(
        sample.source.dest,
        target,
        sample.backup,
        "-v",
        "--tablespace",
        f"ts1:{ts1}",
        "--tablespace",
        f"ts2:{ts2}",
    )
    assert result.stdout.strip() == sample.backup
    assert "3 stored archives match" in result.stderr
    data = target.data
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    assert sorted(os.listdir(os.path.join(data, "pg_wal"))) == ["archive_status"]
    with sample.source.dest.store() as store:
        info = Catalog(store, SERVER).get(sample.backup)
    links = {
        t.name: os.readlink(os.path.join(data, "pg_tblspc", str(t.oid)))
        for t in info.tablespaces or ()
    }
    assert links == {"ts1": ts1, "ts2": ts2}
    if os.geteuid() == 0:  # as root, owners come from the archive (postgres), as with tar
        for path in (
            data,
            os.path.join(data, "PG_VERSION"),
            os.path.join(data, "global", "pg_control"),
            ts1,
            ts2,
            target.wal_dir,
        ):
            assert _owner(path) == "postgres", path

    bindir = sample.cluster.bindir
    verified = subprocess.run(
        [f"{bindir}/pg_verifybackup", "-n", data], capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stderr
    # With the backup's WAL fetched from the archive, pg_verifybackup parses it too.
    wal = os.path.join(target.base, "wal")
    os.mkdir(wal)
    assert info.begin_wal and info.end_wal
    for segment in segment_range(info.begin_wal, info.end_wal):
        fetched = pgvault_run(
            pgvault_bin, "wal-restore", sample.source.dest.url, SERVER, segment, f"{wal}/{segment}"
        )
        assert fetched.returncode == 0, fetched.stderr
    verified = subprocess.run(
        [f"{bindir}/pg_verifybackup", "-w", wal, data], capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stderr
    assert "backup successfully verified" in verified.stdout

    with restored_server(target, bindir) as server:
        _promoted(server)
        assert checksums(server) == sample.tables
        assert server.one(f"select count(*) from {UNLOGGED}") == 0
        locations = dict(
            server.sql("select spcname, pg_tablespace_location(oid) from pg_tablespace")
        )
        assert locations["ts1"] == ts1 and locations["ts2"] == ts2
        # Archiving is held: the promoted copy never writes into the source's archive.
        history = f"{server.one('select timeline_id from pg_control_checkpoint()'):08X}.history"
        ready = os.listdir(os.path.join(data, "pg_wal", "archive_status"))
        assert f"{history}.ready" in ready
        with sample.source.dest.store() as store:
            assert not any(history in o.key for o in store.list_objects(f"{SERVER}/wals/"))


def test_a_non_empty_recovery_directory_is_refused(sample: Sample, target: Target) -> None:
    os.makedirs(target.data)
    Path(target.data, "precious").write_text("keep me")
    result = restore(sample.source.dest, target, sample.backup, check=False)
    assert result.returncode == 3
    assert f"{target.data} is not empty" in result.stderr and result.stderr.count("\n") == 1
    assert os.listdir(target.data) == ["precious"]
    assert not os.path.exists(target.wal_dir)


def _flip(path: str, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_a_damaged_archive_is_refused_and_nothing_is_left(
    sample: Sample, target: Target, make_dest: object
) -> None:
    relocation = [
        "--tablespace",
        f"ts1:{target.base}/ts1",
        "--tablespace",
        f"ts2:{target.base}/ts2",
        "--accept-wal-gap",  # these destinations hold no WAL: the archives are under test
    ]
    cases = []
    for flags in ([], ["--lz4"]):
        dest: TestDestination = make_dest("file")  # type: ignore[operator]
        # Another destination than the archive's: these backups are damaged, never recovered.
        cases.append((dest, sample.source.backup("--no-wal-check", *flags, dest=dest)))
    (plain, plain_id), (lz4, lz4_id) = cases
    root = plain.url.removeprefix("file://")
    with plain.store() as store:
        record = Catalog(store, SERVER).pgvault_manifest(plain_id)
    assert record is not None
    victim = next(f for f in record.files if f.archive == "data.tar" and f.size > 8192)
    key = f"{SERVER}/base/{plain_id}/data.tar"
    _flip(os.path.join(root, key), victim.offset + 100)

    os.makedirs(target.data)  # an existing empty directory stays, empty
    result = restore(plain, target, plain_id, *relocation, check=False)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if not line.startswith("WARNING: ")]
    assert len(errors) == 1, result.stderr  # one line of error (the accepted WAL gap warns)
    assert f"{plain.url}/{key}" in result.stderr and victim.path in result.stderr
    assert "checksum" in result.stderr
    assert os.listdir(target.base) == ["data"] and os.listdir(target.data) == []

    # A compressed archive damaged in the middle, then one cut short.
    lz4_root = lz4.url.removeprefix("file://")
    lz4_key = f"{SERVER}/base/{lz4_id}/data.tar.lz4"
    size = os.path.getsize(os.path.join(lz4_root, lz4_key))
    _flip(os.path.join(lz4_root, lz4_key), size // 2)
    result = restore(lz4, target, lz4_id, *relocation, check=False)
    assert result.returncode == 1 and f"{lz4.url}/{lz4_key}" in result.stderr, result.stderr
    assert os.listdir(target.base) == ["data"] and os.listdir(target.data) == []
    _flip(os.path.join(lz4_root, lz4_key), size // 2)
    with open(os.path.join(lz4_root, lz4_key), "r+b") as fh:
        fh.truncate(size - 1000)
    result = restore(lz4, target, lz4_id, *relocation, check=False)
    assert result.returncode == 1 and f"{lz4.url}/{lz4_key}" in result.stderr, result.stderr
    assert os.listdir(target.base) == ["data"] and os.listdir(target.data) == []


# ---- S3: credentials, barman-cloud backups, detached jobs ---------------------------------


@pytest.fixture(scope="module")
def s3_source(pgvault_bin: str, emulators: dict[str, Emulator]) -> Iterator[Sample]:
    dest = make_destination("s3", emulators)
    source = make_source(dest, pgvault_bin, scale=1)
    try:
        populate(source.cluster, rows=3000)
        backup = source.backup("--gzip")
        source.archive_everything()
        yield Sample(source, backup, checksums(source.cluster))
    finally:
        source.cluster.drop()


def _without_aws_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


def _restore_raw(
    args: list[str], env: dict[str, str], state_dir: str | None = None
) -> subprocess.CompletedProcess[str]:
    head = [PGVAULT] + (["--state-dir", state_dir] if state_dir else []) + ["--batch", "restore"]
    return subprocess.run([*head, *args], capture_output=True, text=True, env=env, timeout=600)


def _no_secret_anywhere(target: Target, *texts: str) -> None:
    with open(os.path.join(target.data, "postgresql.auto.conf")) as fh:
        conf = fh.read()
    assert MARK not in conf and "AWS_SECRET_ACCESS_KEY" not in conf
    for text in texts:
        assert MARK not in text


@pytest.mark.parametrize("where", ["url", "environment"])
def test_credentials_reach_restore_command_through_a_0600_file_only(
    where: str, s3_source: Sample, target: Target, tmp_path: Path
) -> None:
    dest = s3_source.source.dest
    key_id, secret = f"AKID{where.upper()}", f"{MARK}{where}-s3cr3t/+="
    env = _without_aws_env()
    url = dest.url
    if where == "url":
        from urllib.parse import quote

        url += f"?AWS_ACCESS_KEY_ID={key_id}&AWS_SECRET_ACCESS_KEY={quote(secret, safe='')}"
    else:
        env.update(AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret)
    state = str(tmp_path / "state")
    result = _restore_raw(
        ["-v", *_relocate(target), *dest.cli_args, url, SERVER, "latest", target.data], env, state
    )
    assert result.returncode == 0, result.stderr
    jobs = subprocess.run(
        [PGVAULT, "--state-dir", state, "--batch", "jobs", "list", "--format", "json"],
        capture_output=True,
        text=True,
    )
    assert '"restore"' in jobs.stdout
    _no_secret_anywhere(target, result.stdout, result.stderr, jobs.stdout)
    credentials = os.path.join(target.wal_dir, "credentials.json")
    st = os.stat(credentials)
    assert stat.S_IMODE(st.st_mode) == 0o600
    if os.geteuid() == 0:
        assert _owner(credentials) == "postgres"
    with open(credentials) as fh:
        stored = json.load(fh)
    section = "url" if where == "url" else "environment"
    assert stored[section]["AWS_SECRET_ACCESS_KEY"] == secret
    with restored_server(target, s3_source.cluster.bindir) as server:  # no AWS_* in its env
        _promoted(server)
        assert checksums(server) == s3_source.tables
        # recovery_end_command removed the credentials once recovery ended.
        wait_for(lambda: not os.path.exists(credentials), timeout=30, what="credentials removed")


def _relocate(target: Target) -> list[str]:
    return ["--tablespace", f"ts1:{target.base}/ts1", "--tablespace", f"ts2:{target.base}/ts2"]


def test_environment_mode_writes_no_credentials(s3_source: Sample, target: Target) -> None:
    dest = s3_source.source.dest
    env = {
        **_without_aws_env(),
        "AWS_ACCESS_KEY_ID": "AKIDSERVER",
        "AWS_SECRET_ACCESS_KEY": f"{MARK}server",
    }
    result = _restore_raw(
        [
            "--wal-credentials-via",
            "environment",
            *_relocate(target),
            *dest.cli_args,
            dest.url,
            SERVER,
            "latest",
            target.data,
        ],
        env,
    )
    assert result.returncode == 0, result.stderr
    assert not os.path.exists(os.path.join(target.wal_dir, "credentials.json"))
    _no_secret_anywhere(target, result.stdout, result.stderr)
    server_env = {"AWS_ACCESS_KEY_ID": "AKIDSERVER", "AWS_SECRET_ACCESS_KEY": f"{MARK}server"}
    with restored_server(target, s3_source.cluster.bindir, env=server_env) as server:
        _promoted(server)
        assert checksums(server) == s3_source.tables


def test_a_backup_written_by_barman_cloud_restores(s3_source: Sample, target: Target) -> None:
    dest = s3_source.source.dest
    cluster = s3_source.cluster
    with dest.store() as store:
        before = {b.backup_id for b in Catalog(store, SERVER).backups()}
    run_barman(
        "backup",
        dest,
        "--gzip",
        "--immediate-checkpoint",
        *cluster.conninfo_args(),
        dest.url,
        SERVER,
    )
    with dest.store() as store:
        (backup,) = {b.backup_id for b in Catalog(store, SERVER).backups()} - before
        assert Catalog(store, SERVER).pgvault_manifest(backup) is None
    cluster.sql("create table after_barman as select generate_series(1, 100) as n")
    s3_source.source.archive_everything()
    tables = checksums(cluster)
    result = restore(dest, target, backup, "-v", *_relocate(target))
    assert result.stdout.strip() == backup
    assert "no pgvault.json" in result.stderr and "not verified" in result.stderr
    assert not os.path.exists(os.path.join(target.data, "backup_manifest"))
    with restored_server(target, cluster.bindir) as server:
        _promoted(server)
        assert checksums(server) == tables
    cluster.sql("drop table after_barman")
    s3_source.tables = checksums(cluster)


def test_a_detached_restore_is_a_job(s3_source: Sample, target: Target, tmp_path: Path) -> None:
    dest = s3_source.source.dest
    state = str(tmp_path / "state")
    secret = f"{MARK}detached"
    url = f"{dest.url}?AWS_ACCESS_KEY_ID=AKIDDETACHED&AWS_SECRET_ACCESS_KEY={secret}"
    result = _restore_raw(
        [
            "--detach",
            *_relocate(target),
            *dest.cli_args,
            url,
            SERVER,
            s3_source.backup,
            target.data,
        ],
        _without_aws_env(),
        state,
    )
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    job_id = int(line)
    job = wait_for(
        lambda: (j := show(state, job_id))["state"] in ("succeeded", "failed") and j,
        timeout=300,
        what="the restore job to end",
    )
    assert job["state"] == "succeeded", job
    assert job["kind"] == "restore" and job["result"]["backup_id"] == s3_source.backup
    listed = subprocess.run(
        [PGVAULT, "--state-dir", state, "--batch", "jobs", "list", "--kind", "restore"],
        capture_output=True,
        text=True,
    )
    assert str(job_id) in listed.stdout and "succeeded" in listed.stdout
    assert secret not in json.dumps(job) and secret not in listed.stdout
    log = Path(state, "workers", f"job-{job_id}.log").read_text()
    assert secret not in log
    _no_secret_anywhere(target)
    with restored_server(target, s3_source.cluster.bindir) as server:
        _promoted(server)
        assert server.one("select count(*) from accounts") == 3000
