"""Second copies end to end: `pgvault copy` from a local destination to Azurite and to S3.

A cluster archives WAL with pgvault into a directory and is backed up there. A copy to
Azurite is killed midway: Azurite then lists no backup (backup.info is copied last), and
the copy run again skips what arrived and completes; barman-cloud-backup-list lists it
there. A copy with --with-wal to moto's S3 is recorded on the source (backup-list and
backup-show show it, without the URL's secret); then the first destination is deleted and
the backup is restored from S3 to a time between two sets of rows: PostgreSQL replays WAL
from the copy and exactly the rows committed before the target are there.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

from core.catalog.reader import Catalog
from core.urls import parse_location, public_url
from tests.support.catalog import put_backup, put_wal
from tests.support.cli import pgvault, spawn
from tests.support.destinations import TestDestination
from tests.support.pitr import make_source, new_target, restore, restored_server
from tests.support.postgres import wait_for_recovery_end
from tests.support.restore import run_barman

SERVER = "pg1"


def _s3_url(dest: TestDestination, secret: str = "") -> str:
    """The S3 copy's URL with its endpoint (and, to prove it is never recorded, a key)."""
    query = f"AWS_ENDPOINT={dest.config.endpoint_url}"
    if secret:
        query += f"&AWS_ACCESS_KEY_ID=testing&AWS_SECRET_ACCESS_KEY={secret}"
    return f"{dest.url}?{query}"


def _backups(dest: TestDestination) -> list[str]:
    with dest.store() as store:
        return [b.backup_id for b in Catalog(store, SERVER).backups()]


def _interrupted_then_resumed(source_url: str, backup: str, azure: TestDestination) -> None:
    args = ["copy", source_url, SERVER, backup, "--to", azure.url, "--max-bandwidth", "256KiB"]
    proc = spawn(*args)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not object_count(azure):
        time.sleep(0.1)
    time.sleep(1.0)  # some of the backup's archive is on its way
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    arrived = object_count(azure)
    assert arrived > 0
    assert _backups(azure) == []  # half a copy is never listed

    result = pgvault("copy", source_url, SERVER, backup, "--to", azure.url, "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["skipped"] > 0 and report["copied"] > 0, report
    assert report["physical"] == [backup]
    assert _backups(azure) == [backup]
    listed = run_barman("backup-list", azure, azure.url, SERVER)
    assert backup in listed.stdout


def _the_catalog_shows_the_copies(
    local: TestDestination, backup: str, urls: list[str], secret: str
) -> None:
    """backup-list and backup-show, text and JSON: where the backup has copies, no secret."""
    expected = [public_url(parse_location(url)) for url in urls]
    assert all("SECRET" not in url and "AWS_ENDPOINT" in expected[1] for url in expected)
    listed = pgvault("backup-list", local.url, SERVER, "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["backups_list"][0]["pgvault"]["copies"] == expected
    text = pgvault("backup-list", local.url, SERVER).stdout.splitlines()
    assert text[0].split()[-1] == "Copies" and text[1].split()[-1] == "2"
    shown = pgvault("backup-show", local.url, SERVER, backup, "--format", "json")
    assert json.loads(shown.stdout)["summary"]["copies"] == expected
    shown_text = pgvault("backup-show", local.url, SERVER, backup).stdout
    assert f"{expected[0]}, {expected[1]}" in shown_text
    for out in (listed.stdout, shown.stdout, shown_text):
        assert secret not in out


def object_count(dest: TestDestination) -> int:
    with dest.store() as store:
        return sum(1 for _ in store.list_objects(""))


def test_copy_to_two_providers_resumed_then_restored_from_the_copy_with_the_source_gone(
    make_dest: Callable[..., TestDestination], pgvault_bin: str, job_store_dir: str
) -> None:
    local, azure, s3 = make_dest("file"), make_dest("azure"), make_dest("s3")
    source = make_source(local, pgvault_bin, scale=1)
    try:
        backup = source.backup("--gzip")
        marks = source.commit_marks()
        source.archive_everything()
        _interrupted_then_resumed(local.url, backup, azure)

        secret = "topsecret-copy-key"
        to = _s3_url(s3, secret)
        # The order of the README's synopsis: the backups after --to.
        copied = pgvault("copy", local.url, SERVER, "--to", to, "latest", "--with-wal")
        assert copied.returncode == 0, copied.stderr
        assert secret not in copied.stdout + copied.stderr
        assert "copied and verified" in copied.stdout
        assert _backups(s3) == [backup]
        # the source's record of it and the job store: no secret
        for root in (Path(local.bucket), Path(job_store_dir)):
            for path in root.rglob("*"):
                if path.is_file():
                    assert secret.encode() not in path.read_bytes(), path
        _the_catalog_shows_the_copies(local, backup, [azure.url, to], secret)
    finally:
        source.cluster.drop()
    shutil.rmtree(local.bucket)  # the first region is lost

    target = new_target()
    s3_cli = TestDestination("s3", _s3_url(s3), s3.bucket, s3.config, env=s3.env)
    try:
        restore(s3_cli, target, backup, "--target-time", marks.time)
        with restored_server(target, source.cluster.bindir) as server:
            wait_for_recovery_end(server)
            assert 'restored log file "' in server.server_log()
            rows = [r[0] for r in server.sql("select id from marks order by id")]
            assert rows == marks.before
            assert server.one("select count(*) from pgbench_accounts") == 100000
    finally:
        target.drop()


def test_bad_input_is_one_line_with_exit_3_and_a_conflict_exit_1(
    make_dest: Callable[..., TestDestination],
) -> None:
    local, other = make_dest("file"), make_dest("file")
    put_backup(local, "20260102T000000", begin="000000010000000000000002")
    put_wal(local, ["000000010000000000000002"])
    put_backup(local, "20260101T000000", "FAILED", begin="000000010000000000000001")
    secret_url = "s3://b/p?AWS_ACCESS_KEY_ID=A&AWS_SECRET_ACCESS_KEY=topsecret-bad-input"
    cases = [
        (["copy", local.url, SERVER, "latest"], "--to"),
        (["copy", local.url, SERVER, "latest", "--to", "ftp://x/y"], "ftp"),
        (["copy", local.url, SERVER, "--to", other.url], "--all"),
        (["copy", local.url, SERVER, "latest", "--all", "--to", other.url], "not both"),
        (["copy", local.url, SERVER, "latest", "--to", local.url], "target is its source"),
        (["copy", local.url, SERVER, "20260101T000000", "--to", other.url], "FAILED"),
        (["copy", local.url, SERVER, "latest", "--to", secret_url + "&X=1"], "X"),
        (["copy", local.url, SERVER, "latest", "--max-bandwidth", "lots", "--to", other.url], ""),
    ]
    for args, words in cases:
        result = pgvault(*args)
        stderr = result.stderr.strip()
        assert result.returncode == 3, (args, result.returncode, stderr)
        assert len(stderr.splitlines()) == 1 and "Traceback" not in stderr, stderr
        assert words in stderr and "topsecret-bad-input" not in stderr, stderr

    with other.store() as store:  # the target holds other bytes where the copy would write
        store.put_bytes(f"{SERVER}/base/20260102T000000/data.tar", b"other" * 10)
    conflict = pgvault("copy", local.url, SERVER, "latest", "--to", other.url)
    assert conflict.returncode == 1, conflict.stderr
    assert "not overwritten" in conflict.stderr and "Traceback" not in conflict.stderr
    assert _backups(other) == []
