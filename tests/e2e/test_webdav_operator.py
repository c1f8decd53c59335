"""A WebDAV destination as an operator meets it, on nginx's dav module with dav-ext: a
collection that does not exist. Each case was found by using pgvault from outside (the
happy path and the other bad inputs are in test_http_destination.py).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import pgvault
from tests.support.wal import WalSample
from tests.support.webdav_server import AUTH_PASSWORD, DavServer, start_nginx_dav

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
