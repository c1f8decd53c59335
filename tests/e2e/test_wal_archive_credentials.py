"""wal-archive --credentials-file: archive_command without a secret in it, on both paths."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from core.credentials_file import StoredCredentials, write_credentials
from tests.support.destinations import TestDestination
from tests.support.postgres import world_dir
from tests.support.wal import WalSample, archived_names, private_parent, stop_pushers

SECRET = "never-echoed-secret/+=9"


@pytest.fixture
def spool(scratch_dirs: Callable[[str], str]) -> Iterator[str]:
    root = private_parent(scratch_dirs)  # wal-archive runs as this user: its spool too
    yield root
    stop_pushers(root)


def _pg_wal_with(sample: WalSample, segment: str) -> str:
    pg_wal = os.path.join(world_dir("pgvault-creds-wal-"), "pg_wal")
    os.makedirs(os.path.join(pg_wal, "archive_status"))
    shutil.copy(sample.path(segment), pg_wal)
    Path(pg_wal, "archive_status", f"{segment}.ready").touch()
    return os.path.join(pg_wal, segment)


@pytest.mark.parametrize("fast", [False, True], ids=["sync", "async"])
def test_credentials_come_from_a_0600_file_and_an_unsafe_one_is_refused(
    fast: bool,
    make_dest: Callable[..., TestDestination],
    wal_sample: WalSample,
    pgvault_bin: str,
    spool: str,
    tmp_path: Path,
) -> None:
    dest = make_dest("s3")
    # Only the file has the keys: the environment's are dropped.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    path = str(tmp_path / "creds.json")
    write_credentials(
        path,
        StoredCredentials(
            url={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": SECRET},
            environment={"AWS_DEFAULT_REGION": "us-east-1"},
        ),
    )
    segment = wal_sample.segments[0]
    wal = _pg_wal_with(wal_sample, segment)
    flags = [*dest.cli_args, "--credentials-file", path]
    flags += ["--async", "--spool-dir", spool] if fast else []

    def archive(url: str = dest.url) -> tuple[int, str]:
        command = [pgvault_bin, "--batch", "wal-archive", *flags, url, "pg1", wal]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
        assert "Traceback" not in done.stderr and SECRET not in done.stderr + done.stdout
        return done.returncode, done.stderr

    os.chmod(path, 0o640)
    code, stderr = archive()
    assert code == 3 and "chmod 600" in stderr, stderr
    with dest.store() as store:
        assert list(archived_names(store, "pg1")) == []
    os.chmod(path, 0o600)
    code, stderr = archive()
    assert (code, "carries credentials" in stderr) == (0, False), stderr
    with dest.store() as store:
        assert list(archived_names(store, "pg1")) == [segment]
    # A secret in the URL itself works, and is named (never shown) in a warning.
    secret_url = f"{dest.url}?AWS_ACCESS_KEY_ID=testing&AWS_SECRET_ACCESS_KEY={quote(SECRET)}"
    code, stderr = archive(url=secret_url)
    assert code == 0 and "carries credentials (AWS_SECRET_ACCESS_KEY)" in stderr, stderr
