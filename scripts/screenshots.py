"""Regenerate screenshots/*.png from the real console on real data.

Starts the demo (a throwaway PostgreSQL with sample data and a real backup job at the demo's
8 MiB/s), drives the app headless at a terminal size (80x24 by default) and saves each view
as SVG (Textual's own export), converted to PNG with cairosvg. Every directory it uses is
private and removed at the end; the demo cluster is stopped.

    .venv/bin/python scripts/screenshots.py [--size 80x24] [--out screenshots] [--keep-svg]
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


TEXT = re.compile(
    r'<text ([^>]*?)x="([0-9.]+)"([^>]*?)textLength="([0-9.]+)"([^>]*)>([^<]*)</text>'
)


def one_cell_per_glyph(svg: str) -> str:
    """Give every character of a run its own x: cairosvg ignores textLength, and glyphs
    from a fallback font (block elements in bold) would otherwise push a run past its cells."""

    def place(match: re.Match[str]) -> str:
        before, x, middle, length, after, content = match.groups()
        count = len(html.unescape(content))
        if count < 2:
            return match.group(0)
        step = float(length) / count
        xs = " ".join(f"{float(x) + i * step:.1f}" for i in range(count))
        return f'<text {before}x="{xs}"{middle}textLength="{length}"{after}>{content}</text>'

    return TEXT.sub(place, svg)


def private_world() -> Path:
    """Demo, destination, state and config directories no operator's console shares."""
    base = Path("/tmp/pgvault-screens")  # short and fixed: the paths show on screen
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(mode=0o755)
    base.chmod(0o755)  # the demo server's OS user reads its directory under it
    os.environ["PGVAULT_DEMO_DIR"] = str(base / "demo")
    os.environ["XDG_DATA_HOME"] = str(base / "data")
    os.environ["XDG_CONFIG_HOME"] = str(base / "config")
    os.environ["PGVAULT_STATE_DIR"] = str(base / "state")
    os.environ.pop("NO_COLOR", None)
    return base


def logical_backup() -> str:
    """A real logical backup of the demo's shop database (gzip), as `--batch backup
    --database shop` takes it; its ID."""
    from core.demo import DEMO_SERVER, load_demo
    from core.logical.backup import LogicalBackupRequest, run_logical_backup
    from core.postgres.connection import ConnectionParams
    from core.urls import parse_location

    demo = load_demo()
    if demo is None:
        raise SystemExit("screenshots: the demo is gone")
    params = demo.connection()
    request = LogicalBackupRequest(
        location=parse_location(demo.destination),
        server=DEMO_SERVER,
        database="shop",
        connection=ConnectionParams(params["host"], params["port"], params["user"]),
        compression="gzip",
        name="before-migration",
    )
    return run_logical_backup(request).backup_id


def incremental_backup() -> str:
    """A real incremental backup of the demo on its newest DONE backup, as `--batch backup
    --incremental` takes it after a few changed rows; its ID."""
    import psycopg2

    from core.backup.pipeline import run_backup
    from core.backup.request import BackupRequest
    from core.demo import DEMO_SERVER, load_demo
    from core.postgres.connection import ConnectionParams
    from core.urls import parse_location

    demo = load_demo()
    if demo is None:
        raise SystemExit("screenshots: the demo is gone")
    params = demo.connection()
    connection = ConnectionParams(params["host"], params["port"], params["user"])
    conn = psycopg2.connect(connection.dsn("shop"))
    try:
        with conn, conn.cursor() as cursor:  # commits
            cursor.execute("update customers set name = name where id % 50 = 0")
    finally:
        conn.close()
    request = BackupRequest(
        location=parse_location(demo.destination),
        server=DEMO_SERVER,
        connection=connection,
        compression="zstd",
        immediate_checkpoint=True,
        incremental="incremental",
    )
    return run_backup(request).backup_id


def second_copy(backup_id: str) -> str:
    """A real second copy of one demo backup in another directory, as `--batch copy ...
    --to` makes it (every object read back and compared; recorded in the demo's catalog);
    the copy's URL."""
    from core.copy.job import CopyRequest, run_copy
    from core.demo import DEMO_SERVER, load_demo
    from core.progress import NullReporter
    from core.urls import parse_location

    demo = load_demo()
    if demo is None:
        raise SystemExit("screenshots: the demo is gone")
    target = f"file://{Path(os.environ['PGVAULT_STATE_DIR']).parent / 'dr-copy'}"
    request = CopyRequest(
        location=parse_location(demo.destination),
        server=DEMO_SERVER,
        target=parse_location(target),
        backups=(backup_id,),
    )
    run_copy(request, NullReporter())
    return target


def encrypted_backup() -> tuple[str, str]:
    """A real encrypted backup of the demo in the default local destination (a key file
    wrapped for a passphrase, as `--batch keys init` and `backup --zstd` make them); its ID
    and the passphrase."""
    from core import paths
    from core.demo import DEMO_SERVER, load_demo

    demo = load_demo()
    if demo is None:
        raise SystemExit("screenshots: the demo is gone")
    params = demo.connection()
    passphrase = "screenshot passphrase 0f9a"  # noqa: S105 - the scene's throwaway key
    secret = Path(os.environ["PGVAULT_STATE_DIR"]).parent / "passphrase"
    secret.write_text(passphrase + "\n")
    secret.chmod(0o600)
    url = paths.default_destination()
    pgvault = [str(Path(sys.executable).parent / "pgvault"), "--batch"]
    unlock = ["--encryption-passphrase-file", str(secret)]
    subprocess.run([*pgvault, "keys", "init", *unlock, url, DEMO_SERVER], check=True)
    connection = ["-h", params["host"], "-p", params["port"], "-U", params["user"]]
    backup = ["backup", "--zstd", "--immediate-checkpoint", "--no-wal-check"]
    taken = subprocess.run(
        [*pgvault, *backup, *connection, url, DEMO_SERVER],
        check=True,
        capture_output=True,
        text=True,
    )
    return taken.stdout.strip(), passphrase


def protection_world(state_dir: str) -> None:
    """A vault on the demo's destination, the seed's edited policy, the demo server as a
    backup instance, one real ad hoc backup of it (a job like any other), then a secondary
    destination for the instance."""
    import json
    import tempfile

    from core.demo import DEMO_SERVER, load_demo
    from core.protection import editing, service
    from core.protection.agent import adhoc
    from core.protection.template import default_policy_template
    from core.storage import StoreConfig
    from core.urls import parse_location

    demo = load_demo()
    if demo is None:
        raise SystemExit("screenshots: the demo is gone")
    service.create_vault(
        state_dir,
        "demo-vault",
        location=parse_location(demo.destination),
        cloud_provider=None,
        config=StoreConfig(),
    )
    days = ("2021-08-15T22:00:00", "2021-08-18T22:00:00", "2021-08-20T22:00:00")
    policy = editing.set_trigger(
        default_policy_template(), editing.create_schedule("Weekly", 1, days)
    )
    lifecycles = [
        editing.create_lifecycle(6, "Months", "VaultStore", "ArchiveStore", "CopyOnExpiryOption"),
        editing.create_lifecycle(24, "Months", "ArchiveStore"),
    ]
    policy = editing.set_retention_rule(policy, "Monthly", lifecycles)
    policy = editing.set_tag(policy, "Monthly", [editing.create_absolute_criteria("FirstOfMonth")])
    instance = service.initialize_instance(
        conninfo=f"host={demo.socket_dir} port={demo.port} user=postgres dbname=postgres",
        server_name=DEMO_SERVER,
        policy="weekly",
        name="demo",
    )
    with tempfile.TemporaryDirectory() as files:
        policy_file, instance_file = Path(files, "policy.json"), Path(files, "instance.json")
        policy_file.write_text(json.dumps(policy))
        instance_file.write_text(json.dumps(instance))
        service.create_policy(state_dir, "demo-vault", "weekly", str(policy_file))
        service.create_instance(state_dir, "demo-vault", str(instance_file))
    adhoc(state_dir, "demo-vault", "demo", "Monthly", datetime.now(UTC))
    # From now on the agent copies each new backup to the DR directory (shown in the detail).
    dr_copy = f"file://{Path(state_dir).parent / 'dr-copy'}"
    service.update_instance(state_dir, "demo-vault", "demo", None, secondary=dr_copy)


async def shoot(size: tuple[int, int], out: Path, keep_svg: bool) -> list[Path]:
    import cairosvg
    from textual.pilot import Pilot
    from textual.widgets import Input, Tree

    from core.jobs import JobState
    from tui.app import PgvaultApp
    from tui.config import ConsoleConfig
    from tui.modals.logical_restore import LogicalRestoreScreen
    from tui.modals.new_backup import NewBackupScreen
    from tui.modals.restore import RestoreScreen
    from tui.modals.unlock import UnlockScreen
    from tui.screens.backup import BackupScreen
    from tui.screens.catalog import CatalogScreen
    from tui.screens.job_detail import JobDetailScreen
    from tui.screens.protection import ProtectionScreen
    from tui.widgets.table import ResponsiveTable

    app = PgvaultApp(ConsoleConfig(demo=True))
    written: list[Path] = []

    async def until(
        pilot: Pilot[int], what: str, condition: Callable[[], bool], timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise SystemExit(f"screenshots: timed out waiting for {what}")
            await pilot.pause(0.1)

    async def select_in_catalog(pilot: Pilot[int], backup_id: str, what: str) -> None:
        """Reload the catalog view and select one of the demo's backups in its table."""
        await pilot.press("2", "R")
        await until(pilot, "the catalog", lambda: isinstance(app.screen, CatalogScreen), 10)
        await select_in_table(pilot, backup_id, what)

    async def select_in_table(pilot: Pilot[int], backup_id: str, what: str) -> None:
        """Select one of the demo server's backups in the catalog's table, once listed."""
        table = app.screen.query_one("#backups", ResponsiveTable)
        key = f"demo/{backup_id}"
        await until(pilot, f"{what} in the catalog", lambda: key in table.keys, 60)
        table.focus()
        table.select_key(key)
        await pilot.pause(0.5)

    def save(name: str) -> None:
        svg = out / f"{name}.svg"
        app.save_screenshot(svg.name, str(out))
        png = out / f"{name}.png"
        text = one_cell_per_glyph(svg.read_text())
        svg.write_text(text)
        width = app.size.width  # a scene may widen the terminal
        cairosvg.svg2png(bytestring=text.encode(), write_to=str(png), output_width=width * 12)
        if not keep_svg:
            svg.unlink()
        written.append(png)
        print(f"screenshots: {png.relative_to(REPO) if png.is_relative_to(REPO) else png}")

    def demo_job_running(seconds: float) -> Callable[[], bool]:
        def check() -> bool:
            job = app.state.jobs.get(app.state.demo_job or -1)
            return (
                job is not None
                and job.state is JobState.RUNNING
                and job.bytes_done > 0
                and job.started is not None
                and time.time() - job.started > seconds
            )

        return check

    async with app.run_test(size=size) as pilot:
        await until(pilot, "the demo's backup job", demo_job_running(20), timeout=300)
        save("jobs")
        await pilot.press("question_mark")
        await pilot.pause(0.5)
        save("help")
        await pilot.press("escape")

        await pilot.press("enter")
        await until(pilot, "job detail", lambda: isinstance(app.screen, JobDetailScreen), 10)
        await pilot.pause(3)
        save("job-detail")
        await pilot.press("escape")

        await pilot.press("n")
        await until(
            pilot, "the new-backup form", lambda: isinstance(app.screen, NewBackupScreen), 10
        )
        await pilot.pause(0.5)
        save("new-backup")
        await pilot.press("escape")

        job_id = app.state.demo_job or -1
        await until(
            pilot,
            "the demo backup to finish",
            lambda: job_id in app.state.jobs and app.state.jobs[job_id].state is JobState.SUCCEEDED,
            timeout=600,
        )
        backup_id = str(app.state.jobs[job_id].details.backup_id)
        await pilot.press("2")
        await until(pilot, "the catalog", lambda: isinstance(app.screen, CatalogScreen), 10)
        catalog = app.screen
        key = f"demo/{backup_id}"
        await until(
            pilot,
            "the finished backup in the catalog",
            lambda: (
                key in catalog.query_one("#backups", ResponsiveTable).keys
                and catalog.query_one("#backups", ResponsiveTable).get_cell(key, "status").plain
                == "DONE"
            ),
            timeout=60,
        )
        table = catalog.query_one("#backups", ResponsiveTable)
        table.focus()
        table.select_key(key)
        await pilot.pause(0.5)
        save("catalog")

        await pilot.press("enter")
        await until(pilot, "the backup's details", lambda: isinstance(app.screen, BackupScreen), 10)
        detail = app.screen
        assert isinstance(detail, BackupScreen)
        await until(pilot, "its tables", lambda: detail.loaded and detail.wal_checked, 60)
        detail.query_one("#tables", ResponsiveTable).focus()
        await pilot.pause(0.5)
        save("backup-tables")

        await pilot.press("r")
        await until(pilot, "the restore form", lambda: isinstance(app.screen, RestoreScreen), 10)
        app.screen.query_one("#directory", Input).value = "/var/lib/postgresql/17/restored"
        # A point in time after the backup ended: what the archived WAL can reach.
        moment = datetime.now(UTC).replace(microsecond=0)
        app.screen.query_one("#time", Input).value = moment.isoformat(sep=" ")
        await pilot.pause(0.5)
        save("restore")
        await pilot.press("escape")

        await pilot.press("escape", "3")
        await pilot.pause(3)
        save("wal")

        logical_id = await asyncio.to_thread(logical_backup)
        await select_in_catalog(pilot, logical_id, "the logical backup")
        save("catalog-logical")

        await pilot.press("enter")
        await until(pilot, "its tables", lambda: isinstance(app.screen, BackupScreen), 10)
        await pilot.pause(0.5)
        save("logical-tables")

        await pilot.press("r")
        await until(
            pilot,
            "the logical restore form",
            lambda: isinstance(app.screen, LogicalRestoreScreen),
            10,
        )
        app.screen.query_one("#new_db_name", Input).value = "shop_before_migration"
        await pilot.pause(0.5)
        save("restore-logical")
        await pilot.press("escape", "escape")

        await asyncio.to_thread(protection_world, os.environ["PGVAULT_STATE_DIR"])
        await pilot.press("4")
        await until(
            pilot,
            "the protection view",
            lambda: isinstance(app.screen, ProtectionScreen) and bool(app.screen.found),
            timeout=60,
        )
        await pilot.pause(0.5)
        save("protection")

        incremental_id = await asyncio.to_thread(incremental_backup)
        await select_in_catalog(pilot, incremental_id, "the incremental")
        save("catalog-chain")
        await pilot.press("enter")
        await until(pilot, "its chain", lambda: isinstance(app.screen, BackupScreen), 10)
        await pilot.pause(1)
        save("backup-chain")
        await pilot.press("escape")

        # COPIES shows on a wide terminal (and the summary says where the copies are)
        await asyncio.to_thread(second_copy, backup_id)
        await pilot.resize_terminal(160, 30)
        await pilot.pause(0.5)
        await select_in_catalog(pilot, backup_id, "the copied backup")
        save("catalog-copies")
        await pilot.resize_terminal(*size)

        # An encrypted server in the default local destination (the tree's first line).
        sealed_id, passphrase = await asyncio.to_thread(encrypted_backup)
        await pilot.press("2", "R")
        await until(pilot, "the catalog", lambda: isinstance(app.screen, CatalogScreen), 10)
        app.screen.query_one("#destinations", Tree).focus()
        await pilot.press("home")
        await select_in_table(pilot, sealed_id, "the encrypted backup")
        save("catalog-encrypted")
        await pilot.press("u")
        await until(pilot, "the unlock form", lambda: isinstance(app.screen, UnlockScreen), 10)
        app.screen.query_one("#passphrase", Input).value = passphrase
        await pilot.pause(0.5)
        save("unlock")
        await pilot.press("escape")
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="80x24", help="terminal size, COLSxROWS")
    parser.add_argument("--out", default=str(REPO / "screenshots"), type=Path)
    parser.add_argument("--keep-svg", action="store_true", help="keep the SVGs next to the PNGs")
    args = parser.parse_args()
    cols, rows = (int(n) for n in args.size.lower().split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    base = private_world()
    try:
        asyncio.run(shoot((cols, rows), args.out.resolve(), args.keep_svg))
    finally:
        from core.demo import stop_demo

        print(f"screenshots: {stop_demo(os.environ['PGVAULT_STATE_DIR'])}")
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
