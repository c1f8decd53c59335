"""An Azurite-style http:// Azure URL with no credentials anywhere is refused credentials.

Nothing in the URL or the environment authenticates, and azure-identity's token credential
is never sent over http: backup-list, copy --to and copy --refresh each exit 2 with one line
naming what would do, never 4 ("unexpected error: ValueError"); --refresh keeps the entry as
unchecked, as it does for an unreachable target. `jobs resume` of a failed copy whose --to
carried AZURE_ACCOUNT_KEY takes credentials from the environment, which has none: exit 2 too.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from core.catalog.copies import read_copies, record_copy
from tests.support.catalog import put_backup, put_wal
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.emulators import AZURITE_KEY
from tests.support.jobs import pgvault as in_state

SERVER = "pg1"
B1 = "20260101T000000"
#: every credential the environment could hold, emptied: the URL has none either
BARE = {
    "AZURE_STORAGE_CONNECTION_STRING": "",
    "AZURE_STORAGE_KEY": "",
    "AZURE_STORAGE_SAS_TOKEN": "",
}


def _refused(result: object, account: str) -> None:
    stderr = result.stderr.strip()  # type: ignore[attr-defined]
    assert result.returncode == 2, stderr  # type: ignore[attr-defined]
    assert len(stderr.splitlines()) == 1, stderr
    assert f"no credentials for Azure account {account} over http" in stderr, stderr
    assert "AZURE_STORAGE_CONNECTION_STRING" in stderr and "unexpected" not in stderr, stderr


def test_an_http_azure_url_without_credentials_exits_2_naming_what_would_do(
    make_dest: Callable[..., TestDestination],
) -> None:
    azure, local = make_dest("azure"), make_dest("file")
    account = azure.url.split("/")[3]
    put_backup(local, B1, begin="000000010000000000000001", end="000000010000000000000002")
    put_wal(local, ["000000010000000000000001", "000000010000000000000002"])

    _refused(pgvault("backup-list", azure.url, SERVER, env=BARE), account)
    _refused(pgvault("copy", local.url, SERVER, B1, "--to", azure.url, env=BARE), account)

    with local.store() as store:
        record_copy(store, SERVER, [B1], azure.url)
    refreshed = pgvault("copy", local.url, SERVER, "--refresh", "--format", "json", env=BARE)
    assert refreshed.returncode == 2, refreshed.stderr
    report = json.loads(refreshed.stdout)
    assert [(c["url"], c["state"]) for c in report["copies"]] == [(azure.url, "unchecked")]
    assert "no credentials for Azure account" in report["copies"][0]["detail"]
    with local.store() as store:
        assert read_copies(store, SERVER) == {B1: (azure.url,)}


def test_resuming_a_copy_whose_key_was_in_its_url_exits_2_without_one_in_the_environment(
    make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    azure, local = make_dest("azure"), make_dest("file")
    put_backup(local, B1, begin="000000010000000000000001", end="000000010000000000000002")
    key = urllib.parse.quote(AZURITE_KEY, safe="")
    # no such container: the copy fails (exit 1), recorded without its key
    to = azure.url.replace(azure.bucket, "nosuchcontainer") + f"?AZURE_ACCOUNT_KEY={key}"
    state = tmp_path / "state"
    failed = in_state(state, "copy", local.url, SERVER, B1, "--to", to, env=BARE)
    assert failed.returncode == 1, failed.stderr
    listed = json.loads(in_state(state, "jobs", "list", "--format", "json", check=True).stdout)
    job_id = str(listed[0]["id"])

    resumed = in_state(state, "jobs", "resume", job_id, env=BARE)
    assert resumed.returncode == 2, resumed.stderr
    error = resumed.stderr.strip().splitlines()[-1]  # after "job N: resuming in a new job"
    assert "no credentials for Azure account devstoreaccount1 over http" in error, error
    assert "unexpected" not in resumed.stderr and AZURITE_KEY not in resumed.stderr
