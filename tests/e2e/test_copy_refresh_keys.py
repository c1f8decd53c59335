"""`copy --refresh` after `keys init` on the source keeps the copies of unencrypted backups.

Unencrypted synthetic backups (physical and logical) are copied to another directory, then
the source gets a key file (`keys init`). The copies never needed it: --refresh still rates
them complete and the record keeps them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from core.catalog.copies import read_copies
from tests.support.catalog import put_backup, put_wal
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination

SERVER = "pg1"
WAL = ["000000010000000000000002", "000000010000000000000003"]
BACKUP, LOGICAL = "20260102T000000", "20260104T000000L"


def test_a_key_file_made_after_the_copy_does_not_make_it_incomplete(
    make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    local, other = make_dest("file"), make_dest("file")
    put_backup(local, BACKUP, begin=WAL[0], end=WAL[1])
    put_wal(local, WAL)
    with local.store() as store:
        store.put_bytes(f"{SERVER}/logical/{LOGICAL}/db/app/toc.dat", b"toc")
        store.put_bytes(f"{SERVER}/logical/{LOGICAL}/logical.json", b"{}")
    copied = pgvault("copy", local.url, SERVER, BACKUP, LOGICAL, "--to", other.url)
    assert copied.returncode == 0, copied.stderr

    passfile = tmp_path / "pass"
    passfile.write_text("keys made after the copy 7e1\n")
    passfile.chmod(0o600)
    init = pgvault("keys", "init", "--encryption-passphrase-file", str(passfile), local.url, SERVER)
    assert init.returncode == 0, init.stderr

    refreshed = pgvault("copy", local.url, SERVER, "--refresh", "--format", "json")
    report = json.loads(refreshed.stdout)
    states = {c["backup_id"]: c["state"] for c in report["copies"]}
    assert states[BACKUP] == "complete", report
    assert report["removed"] == 0, report
    with local.store() as store:
        assert set(read_copies(store, SERVER)) == {BACKUP, LOGICAL}
