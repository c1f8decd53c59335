"""wal-restore --credentials-file: an unusable file is a failure PostgreSQL must not miss."""

from __future__ import annotations

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
