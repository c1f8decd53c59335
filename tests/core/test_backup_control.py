"""The pipeline through the one progress interface: pause, resume and cancel between chunks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from core.backup import BackupRequest, BackupResult, run_backup
from core.catalog.backup_info import DONE, FAILED
from core.catalog.reader import Catalog
from core.errors import Cancelled
from core.postgres.connection import ConnectionParams
from core.progress import Control, Tracker
from core.storage import StoreConfig
from core.urls import parse_location
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster


def _request(pg: Cluster, dest: TestDestination) -> BackupRequest:
    # 4 MiB/s: the ~22 MiB of a fresh cluster take a few seconds to store.
    return BackupRequest(
        location=parse_location(dest.url),
        server="pg",
        store_config=StoreConfig(max_bandwidth=4 * 1024 * 1024),
        connection=ConnectionParams(host=pg.sock, port=str(pg.port), user="postgres"),
        immediate_checkpoint=True,
        compression="lz4",
        wal_check=False,  # the pg fixture does not archive WAL; pause and cancel are at stake
    )


def _start(request: BackupRequest, tracker: Tracker) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def target() -> None:
        try:
            outcome.append(run_backup(request, tracker))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    deadline = time.monotonic() + 60
    while tracker.snapshot().phase != "copying files" or tracker.snapshot().bytes_done == 0:
        assert time.monotonic() < deadline and thread.is_alive(), outcome
        time.sleep(0.02)
    return thread, outcome


def test_pause_holds_the_backup_and_resume_finishes_it(
    pg: Cluster, make_dest: Callable[..., TestDestination]
) -> None:
    dest = make_dest("file")
    control = Control()
    tracker = Tracker(control)
    thread, outcome = _start(_request(pg, dest), tracker)
    control.pause()
    time.sleep(0.5)  # let in-flight slices reach a checkpoint
    held = tracker.snapshot().bytes_done
    time.sleep(1.5)
    assert tracker.snapshot().bytes_done == held and thread.is_alive()
    control.resume()
    thread.join(120)
    (result,) = outcome
    assert isinstance(result, BackupResult) and result.status == DONE
    snapshot = tracker.snapshot()
    assert snapshot.bytes_done == snapshot.bytes_total and snapshot.phase == "done"
    assert any(sample.rate == 0 for sample in tracker.samples())  # the paused seconds


def test_cancel_fails_the_backup_cleanly(
    pg: Cluster, make_dest: Callable[..., TestDestination]
) -> None:
    dest = make_dest("file")
    control = Control()
    thread, outcome = _start(_request(pg, dest), Tracker(control))
    control.cancel("cancelled by the operator")
    thread.join(60)
    (error,) = outcome
    assert isinstance(error, Cancelled)
    assert "cancelled during copying files (cancelled by the operator)" in str(error)
    with dest.store() as store:
        (info,) = Catalog(store, "pg").backups()
        assert info.status == FAILED
        assert store.list_pending_uploads("") == []
    assert (
        pg.one("select count(*) from pg_stat_activity where application_name like 'pgvault%'") == 0
    )
