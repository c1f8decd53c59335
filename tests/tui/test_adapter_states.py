"""The console's catalog shows what backup-list shows: a STARTED backup whose owner is gone as
ABANDONED, a half-deleted one as DELETING, an unreadable backup.info as BROKEN (with why),
and the other backups of the server as they are."""

from __future__ import annotations

import uuid
from pathlib import Path

from core.catalog.backup_info import DELETING_ERROR, DONE, FAILED, STARTED, BackupInfo, serialize
from core.catalog.layout import ServerLayout
from core.catalog.owner import lease_body, lease_key, this_process
from core.storage import StoreConfig, open_store
from core.urls import parse_location
from tui.adapter import load_destination

SERVER = "pg1"
LAYOUT = ServerLayout(SERVER)


def _put(url: str, key: str, body: bytes) -> None:
    with open_store(parse_location(url), StoreConfig()) as store:
        store.put_bytes(key, body)


def test_the_catalog_view_shows_abandoned_deleting_and_broken(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/dest"
    ids = {
        s: f"2026010{n}T000000"
        for n, s in enumerate(("done", "gone", "live", "deleting", "broken"), 1)
    }
    _put(url, LAYOUT.backup_info(ids["done"]), serialize(BackupInfo(ids["done"], status=DONE)))
    for which in ("gone", "live"):
        _put(url, LAYOUT.backup_info(ids[which]), serialize(BackupInfo(ids[which], status=STARTED)))
    me = this_process()
    # "gone": this machine, a process that has ended; "live": this very process.
    dead = {**me, "pid": 4_000_000, "pid_start": "1", "token": uuid.uuid4().hex}
    _put(url, lease_key(LAYOUT, ids["gone"]), lease_body(dead))
    _put(url, lease_key(LAYOUT, ids["live"]), lease_body(me))
    deleting = BackupInfo(ids["deleting"], status=FAILED, error=DELETING_ERROR)
    _put(url, LAYOUT.backup_info(ids["deleting"]), serialize(deleting))
    _put(url, LAYOUT.backup_info(ids["broken"]), b"status=DONE\nversion=fifteen\n")

    view = load_destination(url)
    assert view.error is None
    server = view.server(SERVER)
    assert server is not None and server.error is None
    shown = {b.backup_id: b.status for b in server.backups}
    assert shown == {
        ids["done"]: DONE,
        ids["gone"]: "ABANDONED",
        ids["live"]: STARTED,
        ids["deleting"]: "DELETING",
        ids["broken"]: "BROKEN",
    }
    by_id = {b.backup_id: b for b in server.backups}
    assert "is gone" in (by_id[ids["gone"]].error or "")
    assert "unreadable backup.info" in (by_id[ids["broken"]].error or "")
    assert server.last is not None and server.last.backup_id == ids["deleting"]
