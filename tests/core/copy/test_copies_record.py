"""The copies record under concurrent changes: each change is a read, merge and write under
the record's lock, so copies that end at once are all listed and a refresh that ran
meanwhile removes only what it checked."""

from __future__ import annotations

import threading
from pathlib import Path

from core.catalog.copies import RECORD_LOCK, drop_copies, read_copies, record_copy
from core.catalog.lock import acquire, lock_key, release
from core.storage import ObjectStore, StoreConfig, open_store
from core.urls import parse_location

SERVER = "pg1"
BACKUP = "20260101T000000"


def _store(tmp_path: Path) -> ObjectStore:
    return open_store(parse_location(f"file://{tmp_path / 'dest'}"), StoreConfig())


def test_copies_recorded_at_once_are_all_listed(tmp_path: Path) -> None:
    targets = [f"s3://dr-{n}/pgvault" for n in range(8)]
    start = threading.Barrier(len(targets))

    def copy_ends(url: str) -> None:
        with _store(tmp_path) as store:
            start.wait()
            record_copy(store, SERVER, [BACKUP], url)

    threads = [threading.Thread(target=copy_ends, args=(url,)) for url in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with _store(tmp_path) as store:
        assert sorted(read_copies(store, SERVER)[BACKUP]) == targets
        assert not store.exists(lock_key(SERVER, RECORD_LOCK))  # released


def test_a_refresh_removes_only_the_copies_it_found_gone(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        record_copy(store, SERVER, [BACKUP], "s3://gone/pgvault")
        record_copy(store, SERVER, [BACKUP], "s3://kept/pgvault")
        # recorded after the refresh read the record, before it wrote its result
        record_copy(store, SERVER, [BACKUP], "s3://new/pgvault")
        drop_copies(store, SERVER, {(BACKUP, "s3://gone/pgvault")})
        assert read_copies(store, SERVER) == {BACKUP: ("s3://kept/pgvault", "s3://new/pgvault")}
        drop_copies(store, SERVER, {(BACKUP, "s3://kept/pgvault"), (BACKUP, "s3://new/pgvault")})
        assert read_copies(store, SERVER) == {}


def test_a_change_waits_for_the_record_lock(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        held = acquire(store, SERVER, "another copy", 300, RECORD_LOCK)
        recorded = threading.Event()

        def copy_ends() -> None:
            with _store(tmp_path) as own:
                record_copy(own, SERVER, [BACKUP], "s3://dr/pgvault")
            recorded.set()

        thread = threading.Thread(target=copy_ends)
        thread.start()
        assert not recorded.wait(1.0)  # held: the change waits
        assert read_copies(store, SERVER) == {}
        release(store, SERVER, held, RECORD_LOCK)
        thread.join(timeout=30)
        assert recorded.is_set()
        assert read_copies(store, SERVER) == {BACKUP: ("s3://dr/pgvault",)}
