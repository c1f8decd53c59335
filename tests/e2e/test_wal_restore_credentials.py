"""wal-restore --credentials-file: an unusable file is a failure PostgreSQL must not miss."""

from __future__ import annotations

import os
from pathlib import Path

from core.credentials_file import StoredCredentials, write_credentials
from tests.support.cli import pgvault

SEGMENT = "000000010000000000000001"


def test_an_unusable_credentials_file_stops_recovery(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    dest = tmp_path / "RECOVERYXLOG"
    args = [str(archive.as_uri()), "pg", SEGMENT, str(dest)]
    missing = ["--credentials-file", str(tmp_path / "nothing.json")]
    result = pgvault("wal-restore", *missing, *args)
    assert result.returncode == 3 and "credentials file" in result.stderr
    # restore_command runs with --abort-on-error: 255 makes PostgreSQL stop, not promote.
    result = pgvault("wal-restore", "--abort-on-error", *missing, *args)
    assert result.returncode == 255 and "credentials file" in result.stderr
    readable = tmp_path / "c.json"
    write_credentials(str(readable), StoredCredentials(environment={"AWS_REGION": "x"}))
    readable.chmod(0o644)
    result = pgvault("wal-restore", "--abort-on-error", "--credentials-file", str(readable), *args)
    assert result.returncode == 255 and "chmod 600" in result.stderr
    readable.chmod(0o600)
    # A sound file: the archive simply lacks the segment (exit 1, quietly).
    result = pgvault("wal-restore", "--abort-on-error", "--credentials-file", str(readable), *args)
    assert (result.returncode, result.stderr) == (1, "")
    assert not dest.exists()


def test_a_fifo_a_huge_or_a_deeply_nested_credentials_file_stops_recovery(
    tmp_path: Path,
) -> None:
    """A FIFO hung restore_command in open(); 50 MiB were read by quadratic appends (more
    than 20 s); [[[...]]] escaped as RecursionError. Each now exits 255 in one line."""
    archive = tmp_path / "archive"
    archive.mkdir()
    args = [archive.as_uri(), "pg", SEGMENT, str(tmp_path / "RECOVERYXLOG")]
    fifo, huge, deep = tmp_path / "fifo", tmp_path / "huge.json", tmp_path / "deep.json"
    os.mkfifo(fifo, 0o600)
    huge.write_bytes(b" " * (50 * 1024 * 1024))
    deep.write_text("[" * 100_000 + "]" * 100_000)
    for path, says in (
        (fifo, "is not a regular file"),
        (huge, "is larger than 1 MiB"),
        (deep, "is malformed"),
    ):
        path.chmod(0o600)
        flags = ["--abort-on-error", "--credentials-file", str(path)]
        result = pgvault("wal-restore", *flags, *args, timeout=60)
        assert result.returncode == 255, result.stderr
        assert says in result.stderr and "unexpected" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
