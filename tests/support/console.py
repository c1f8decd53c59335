"""Fixed, deterministic job rows and catalogs for console snapshots and Pilot tests.

Rows are written through the real JobStore API (create, flush, transition); only their
timestamps are then pinned with one UPDATE, so that a snapshot taken with a fixed clock
never changes. Their process is on another host, so no liveness check marks them failed.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.catalog.backup_info import DONE, FAILED, BackupInfo, serialize
from core.catalog.copies import COPIES_FILE
from core.catalog.layout import ServerLayout
from core.catalog.manifest import DatabaseRecord, PgvaultManifest, TableRecord, dump_pgvault
from core.jobs import JobState, JobStore
from core.jobs.store import ProcessInfo
from core.progress import ProgressSnapshot, RateSample

if TYPE_CHECKING:
    from textual.pilot import Pilot

    from tui.app import PgvaultApp
    from tui.screens.catalog import CatalogScreen

#: the frozen "now" of every snapshot: 2026-03-14 15:09:26 UTC
NOW = 1_773_500_966.0
OTHER_HOST = "db-standby-2"
MiB = 1024 * 1024


@dataclass(frozen=True)
class Row:
    """One job as a snapshot shows it."""

    kind: str
    server: str
    destination: str
    state: JobState
    bytes_done: int
    bytes_total: int | None
    files_done: int = 0
    files_total: int | None = None
    rate: float = 0.0
    eta: float | None = None
    phase: str = "streaming"
    age: float = 600.0  # seconds before NOW the job was created
    took: float | None = None  # for finished jobs: how long it ran
    error: str | None = None
    samples: tuple[float, ...] = ()  # rates for the last len(samples) seconds before NOW
    log: tuple[str, ...] = ()


ROWS = (
    Row(
        "backup",
        "pg-main",
        "s3://acme-backups/pg",
        JobState.RUNNING,
        7_340 * MiB,
        12_288 * MiB,
        1_804,
        2_950,
        rate=48.6 * MiB,
        eta=102.0,
        age=190.0,
        samples=tuple((40 + (i % 7) * 2.5 + (12 if 60 < i < 90 else 0)) * MiB for i in range(180)),
        log=(
            "backup 20260314T150616 of server pg-main started",
            "streaming PGDATA: 2950 files, 12.0 GiB",
            "archive data.tar.zst: part 12 stored",
        ),
    ),
    Row(
        "backup",
        "pg-billing",
        "gs://acme-dr/billing",
        JobState.PAUSED,
        2_100 * MiB,
        5_120 * MiB,
        640,
        1_210,
        phase="streaming",
        age=900.0,
        samples=tuple((22.0 if i < 120 else 0.0) * MiB for i in range(200)),
    ),
    Row(
        "backup",
        "pg-main",
        "s3://acme-backups/pg",
        JobState.SUCCEEDED,
        11_980 * MiB,
        11_980 * MiB,
        2_941,
        2_941,
        phase="done",
        age=86_400.0 + 3_600,
        took=312.0,
    ),
    Row(
        "backup",
        "pg-reports",
        "file:///srv/backups",
        JobState.FAILED,
        310 * MiB,
        4_096 * MiB,
        95,
        1_020,
        phase="streaming",
        age=7_200.0,
        took=41.0,
        error="connection to server at 10.0.4.7 lost: server closed the connection",
    ),
    Row(
        "backup",
        "pg-billing",
        "gs://acme-dr/billing",
        JobState.CANCELLED,
        800 * MiB,
        5_120 * MiB,
        200,
        1_210,
        phase="streaming",
        age=172_800.0,
        took=95.0,
        error="cancelled by the operator",
    ),
)


def fill_store(state_dir: str | os.PathLike[str], rows: tuple[Row, ...] = ROWS) -> list[int]:
    """Write the rows (oldest first, so the first row gets the highest id); their ids."""
    path = Path(state_dir)
    path.mkdir(parents=True, exist_ok=True)
    ids: list[int] = []
    pins: list[tuple[int, float, float | None]] = []
    with JobStore.open(str(path)) as store:
        for row in reversed(rows):
            job = store.create(
                row.kind,
                state=JobState.RUNNING,
                description=f"{row.kind} of {row.server} to {row.destination}",
                server=row.server,
                destination=row.destination,
                options={"server": row.server},
                detached=True,
                process=ProcessInfo(pid=4242, host=OTHER_HOST, start=1),
            )
            created = NOW - row.age
            samples = [
                RateSample(at=NOW - len(row.samples) + i + 1, rate=rate)
                for i, rate in enumerate(row.samples)
            ]
            snapshot = ProgressSnapshot(
                phase=row.phase,
                bytes_done=row.bytes_done,
                bytes_total=row.bytes_total,
                files_done=row.files_done,
                files_total=row.files_total,
                rate=row.rate,
                eta=row.eta,
                started=created,
                updated=NOW,
            )
            lines = [(created + i, logging.INFO, text) for i, text in enumerate(row.log)]
            store.flush(job.id, snapshot, samples, lines)
            if row.state is JobState.PAUSED:
                store.request_pause(job.id)
                store.transition(job.id, JobState.PAUSED)
            elif row.state.final:
                if row.state is JobState.CANCELLED:
                    store.request_cancel(job.id)
                store.transition(job.id, row.state, error=row.error)
            ids.append(job.id)
            pins.append((job.id, created, created + row.took if row.took is not None else None))
    # Pin every time to the fixed clock (the only write outside the store's API), once all
    # rows exist: the store prunes finished jobs older than 14 days when it creates one.
    conn = sqlite3.connect(path / "jobs.db")
    with conn:
        for job_id, created, finished in pins:
            conn.execute(
                "UPDATE jobs SET created = ?, started = ?, finished = ?, heartbeat = ?"
                " WHERE id = ?",
                (created, created, finished, NOW, job_id),
            )
            conn.execute(
                "UPDATE job_log SET at = ? + (seq % 1000) WHERE job_id = ?", (created, job_id)
            )
    conn.close()
    return list(reversed(ids))


# ---- a fixed catalog ----------------------------------------------------------------------------


def _when(offset: float) -> datetime:
    return datetime.fromtimestamp(NOW - offset, UTC).replace(tzinfo=None)


#: with `chains`: (ID, kind, parent, offset, begin WAL) of incrementals on 20260313T020000
CHAIN_SPECS = (
    (
        "20260313T080000",
        "incremental",
        "20260313T020000",
        86400 + 25200,
        "000000010000000000000021",
    ),
    ("20260313T140000", "incremental", "20260313T080000", 86400 + 3600, "000000010000000000000022"),
    ("20260313T200000", "differential", "20260313T020000", 68400, "000000010000000000000023"),
)


def write_catalog(
    root: str | os.PathLike[str], server: str = "pg-main", chains: bool = False
) -> list[str]:
    """A local destination with two DONE backups (with second copies) and a FAILED one, WAL
    with one gap; with
    `chains`, two incrementals and a differential on the second (CHAIN_SPECS)."""
    layout = ServerLayout(server)
    base = Path(root)
    ids = []
    specs: list[tuple[str, str, float, str, str | None, str | None, str | None]] = [
        ("20260312T020000", DONE, 2 * 86400 + 46800, "000000010000000000000010", None, None, None),
        ("20260313T020000", DONE, 86400 + 46800, "000000010000000000000020", None, None, None),
        (
            "20260314T020000",
            FAILED,
            46800,
            "000000010000000000000030",
            "lost connection",
            None,
            None,
        ),
    ]
    if chains:
        specs += [
            (i, DONE, offset, wal, None, kind, parent)
            for i, kind, parent, offset, wal in CHAIN_SPECS
        ]
    parents = {spec[0]: spec[6] for spec in specs}
    for backup_id, status, offset, begin_wal, error, kind, parent in specs:
        info = BackupInfo(
            backup_id=backup_id,
            status=status,
            backup_name="before-upgrade" if backup_id.endswith("13T020000") else None,
            begin_time=_when(offset).replace(tzinfo=UTC),
            end_time=_when(offset - 312).replace(tzinfo=UTC),
            begin_wal=begin_wal,
            end_wal=begin_wal[:-2] + f"{int(begin_wal[-2:], 16) + 1:02X}",
            begin_xlog="0/10000028",
            end_xlog="0/11000100",
            timeline=1,
            size=(410 if parent else 3_400) * MiB,
            parent_backup_id=parent,
            cluster_size=11_900 * MiB,
            compression="zstd",
            server_name=server,
            systemid="7434195201237812345",
            version=170002,
            xlog_segment_size=16 * MiB,
            mode="concurrent",
            error=error,
        )
        target = base / layout.backup_info(backup_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(serialize(info))
        manifest = PgvaultManifest(
            backup_id=backup_id,
            server=server,
            state="done" if status == DONE else "failed",
            pgvault_version="0.1.0",
            started=info.begin_time.isoformat() if info.begin_time else "",
            postgres={"version": 170002},
            compression="zstd",
            databases=(
                DatabaseRecord("postgres", 5, 7_700_000),
                DatabaseRecord("shop", 16384, 9_800 * MiB),
                DatabaseRecord("analytics", 16385, 2_050 * MiB),
            ),
            tables=(
                TableRecord(
                    "shop", "public", "order_lines", "table", "permanent", 5_300 * MiB, None
                ),
                TableRecord("shop", "public", "orders", "table", "permanent", 2_900 * MiB, None),
                TableRecord("shop", "public", "customers", "table", "permanent", 1_100 * MiB, None),
                TableRecord("shop", "public", "products", "table", "permanent", 410 * MiB, None),
                TableRecord(
                    "analytics", "public", "page_views", "table", "permanent", 1_980 * MiB, None
                ),
                TableRecord(
                    "analytics",
                    "public",
                    "daily_views",
                    "materialized view",
                    "permanent",
                    48 * 1024,
                    None,
                ),
                TableRecord("analytics", "public", "sessions", "table", "unlogged", 8 * MiB, None),
            ),
        )
        if parent:
            manifest = replace(manifest, incremental=_increment(kind, parent, parents))
        if chains:  # stored sizes a chain's sum reads plausibly (KiB for the MiB of backup.info)
            name = "incremental_data.tar.zst" if parent else "data.tar.zst"
            (target.parent / name).write_bytes(b"x" * ((410 if parent else 3_400) * 1024))
        (target.parent / "pgvault.json").write_bytes(dump_pgvault(manifest))
        ids.append(backup_id)
    # second copies of the two DONE backups (`pgvault copy`), as the source records them
    copies = {
        "20260312T020000": [{"url": "s3://dr-backups/pgvault", "copied": "2026-03-12T04:00:00"}],
        "20260313T020000": [
            {"url": "s3://dr-backups/pgvault", "copied": "2026-03-13T04:00:00"},
            {"url": "gs://pgvault-eu/backups", "copied": "2026-03-13T05:00:00"},
        ],
    }
    (base / server / COPIES_FILE).write_text(json.dumps({"format": 1, "copies": copies}))
    wals = base / server / "wals" / "0000000100000000"
    wals.mkdir(parents=True, exist_ok=True)
    for segment in [*range(0x10, 0x25), *range(0x28, 0x33)]:
        (wals / f"0000000100000000000000{segment:02X}.zst").write_bytes(b"wal")
    return ids


def _increment(kind: str | None, parent: str, parents: dict[str, str | None]) -> dict[str, Any]:
    """pgvault.json's `incremental` record (core.backup.increment), without block maps."""
    chain = [parent]
    while parents.get(chain[0]):
        chain.insert(0, str(parents[chain[0]]))
    return {"kind": kind, "parent": parent, "chain": chain, "method": "wal-summary", "files": []}


# ---- driving the console ----------------------------------------------------------------------


def make_app(state_dir: str, *destinations: str, read_only: bool = False) -> PgvaultApp:
    """The console on a fixed clock, without liveness checks (the rows' host is elsewhere)."""
    from tui.app import PgvaultApp
    from tui.config import ConsoleConfig

    return PgvaultApp(
        ConsoleConfig(
            state_dir=state_dir,
            destinations=tuple(destinations),
            read_only=read_only,
            clock=lambda: NOW,
            reap=False,
        )
    )


async def settle(pilot: Pilot[object], condition: Callable[[], bool], timeout: float = 10) -> None:
    """Let the app run until `condition()` holds (workers report through messages)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await pilot.pause(0.05)


async def steady(pilot: Pilot[object], passes: int = 3, timeout: float = 10) -> None:
    """Let a key's chain of messages (key, screen message, the app's switch) run out: until the
    screen and its focused widget stay the same for `passes` pauses in a row."""
    app = pilot.app
    deadline = time.monotonic() + timeout
    last: tuple[object, object] | None = None
    same = 0
    while same < passes and time.monotonic() < deadline:
        await pilot.pause(0.05)
        now = (app.screen, app.screen.focused)
        same = same + 1 if now == last else 0
        last = now


def loaded(app: PgvaultApp) -> Callable[[], bool]:
    """Jobs read, every destination listed, and the jobs view showing every job."""
    from tui.screens.jobs import JobsScreen

    def done() -> bool:
        if not app.state.jobs_loaded:
            return False
        if not all(view.loaded and not view.loading for view in app.state.destinations.values()):
            return False
        screen = app.screen
        if isinstance(screen, JobsScreen) and not screen.filter_terms:
            return screen.table.row_count == len(app.state.jobs)
        return True

    return done


def palette_titles(app: PgvaultApp) -> list[str]:
    """Every title the command palette offers on the current screen."""
    from tui.commands import ConsoleCommands

    return [title for title, _, _ in ConsoleCommands(app.screen)._commands()]


def ready(app: PgvaultApp) -> Callable[[Pilot[object]], Awaitable[None]]:
    async def run_before(pilot: Pilot[object]) -> None:
        await settle(pilot, loaded(app))
        await pilot.pause(0.2)

    return run_before


async def open_catalog_on(
    app: PgvaultApp, pilot: Pilot[Any], key: str, timeout: float = 30
) -> CatalogScreen:
    """The catalog view, once everything is listed, with backup `key` (SERVER/ID) selected."""
    from tui.screens.catalog import CatalogScreen
    from tui.widgets.table import ResponsiveTable

    await settle(pilot, loaded(app), timeout=timeout)
    await pilot.press("2")
    await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))
    catalog = app.screen
    assert isinstance(catalog, CatalogScreen)
    table = catalog.query_one("#backups", ResponsiveTable)
    await settle(pilot, lambda: key in table.keys, timeout=timeout)
    table.focus()
    assert table.select_key(key)
    await pilot.pause(0.1)
    return catalog
