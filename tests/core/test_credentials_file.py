"""The credentials file restore_command reads: 0600, this user's, never printed."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest

from core.credentials_file import (
    CredentialsFileError,
    StoredCredentials,
    load_credentials,
    write_credentials,
)
from core.secrets import redact


def test_round_trip_and_secrets_are_masked(tmp_path: Path) -> None:
    path = str(tmp_path / "c.json")
    stored = StoredCredentials(
        url={"AWS_SECRET_ACCESS_KEY": "very-secret-1"},
        environment={"AZURE_STORAGE_KEY": "very-secret-2", "STORAGE_EMULATOR_HOST": "http://h:1"},
    )
    write_credentials(path, stored)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert load_credentials(path) == stored
    assert redact("x very-secret-1 very-secret-2 http://h:1") == "x *** *** http://h:1"


def test_unsafe_or_malformed_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    write_credentials(str(path), StoredCredentials(url={"AWS_SECRET_ACCESS_KEY": "zzzz"}))
    path.chmod(0o640)
    with pytest.raises(CredentialsFileError, match="accessible to other users"):
        load_credentials(str(path))
    path.chmod(0o600)
    link = tmp_path / "link.json"
    link.symlink_to(path)
    with pytest.raises(CredentialsFileError, match="cannot read"):
        load_credentials(str(link))
    with pytest.raises(CredentialsFileError, match="cannot read"):
        load_credentials(str(tmp_path / "missing.json"))
    path.write_text(json.dumps({"format": 9}))
    path.chmod(0o600)
    with pytest.raises(CredentialsFileError, match="malformed"):
        load_credentials(str(path))
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        os.chown(path, postgres.pw_uid, postgres.pw_gid)
        with pytest.raises(CredentialsFileError, match="belongs to uid"):
            load_credentials(str(path))
