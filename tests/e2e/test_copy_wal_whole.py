"""A copy carries the WAL each backup needs to be consistent, or fails naming what is missing.

A synthetic backup whose begin..end WAL range lacks a segment in the source is refused
(exit 1, the segment named) and nothing is written on the target; a copy of it made without
that segment (as an older pgvault made one) is rated incomplete by `copy --refresh`.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from core.catalog.copies import read_copies, record_copy
from core.catalog.layout import ServerLayout
from tests.support.catalog import object_keys, put_backup, put_wal
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination

SERVER = "pg1"
LAYOUT = ServerLayout(SERVER)
WAL = [f"0000000100000000000000{n:02X}" for n in range(7, 10)]
BACKUP = "20260101T000000"


def test_a_backup_whose_wal_is_not_whole_is_not_copied_and_its_old_copy_is_incomplete(
    make_dest: Callable[..., TestDestination],
) -> None:
    local, other = make_dest("file"), make_dest("file")
    put_backup(local, BACKUP, begin=WAL[0], end=WAL[2])
    put_wal(local, [WAL[0], WAL[2]])  # WAL[1] lost from the source

    copied = pgvault("copy", local.url, SERVER, BACKUP, "--to", other.url)
    assert copied.returncode == 1, copied.stderr
    assert WAL[1] in copied.stderr and "Traceback" not in copied.stderr
    assert len(copied.stderr.strip().splitlines()) == 1, copied.stderr
    assert object_keys(other, f"{SERVER}/") == set()

    # A copy made without the segment: the backup and the WAL the source has
    with local.store() as source, other.store() as target:
        for key in object_keys(local, f"{SERVER}/"):
            target.put_bytes(key, source.get_bytes(key))
        record_copy(source, SERVER, [BACKUP], other.url)
    refreshed = pgvault("copy", local.url, SERVER, "--refresh", "--format", "json")
    report = json.loads(refreshed.stdout)
    assert [c["state"] for c in report["copies"]] == ["incomplete"], report
    assert WAL[1] in report["copies"][0]["detail"]
    with local.store() as source:
        assert read_copies(source, SERVER) == {}
