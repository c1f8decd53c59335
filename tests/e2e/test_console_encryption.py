"""The console on an encrypted server (issue 16): its backups are marked, their contents and
their restore ask for the passphrase in a masked field; once unlocked, an incremental taken
from the form reads its parent's sealed manifest, the restore of that chain replays
encrypted WAL on a server that then holds the source's data, and a LOCKED logical backup
becomes restorable. The passphrase reaches neither the screen, the job store nor a job's
log.

The app runs headless (Pilot) in this process; the restore runs as a real detached job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Select, Static

from core.catalog.backup_info import DONE
from core.jobs import Job, JobState
from core.jobs.liveness import DEAD_AFTER
from core.jobs.results import RestoreJobResult
from tests.support.cli import pgvault
from tests.support.console import open_catalog_on, palette_titles, settle
from tests.support.destinations import TestDestination
from tests.support.jobs import PGVAULT
from tests.support.logical import SHOP, make_shop
from tests.support.pitr import Source, make_source, new_target, restored_server
from tests.support.postgres import Cluster, chown_tree, make_cluster, wait_for_recovery_end
from tests.support.terminal import Terminal
from tui.adapter import display_url
from tui.app import PgvaultApp
from tui.config import ConsoleConfig
from tui.modals.confirm import ConfirmScreen
from tui.modals.logical_restore import LogicalRestoreScreen
from tui.modals.new_backup import NewBackupScreen
from tui.modals.restore import RestoreScreen
from tui.modals.unlock import UnlockScreen
from tui.screens.backup import BackupScreen
from tui.screens.catalog import CatalogScreen
from tui.screens.jobs import JobsScreen
from tui.widgets.table import ResponsiveTable

SERVER = "pg1"
PASSPHRASE = "console canary 4e1d passphrase"


@pytest.fixture
def keyed(make_dest: Callable[..., TestDestination], tmp_path: Path) -> TestDestination:
    """A local destination whose server has a key file wrapped for PASSPHRASE."""
    dest = make_dest("file")
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    passfile = secrets / "pass"
    passfile.write_text(PASSPHRASE + "\n")
    passfile.chmod(0o600)
    created = pgvault(
        "keys", "init", "--encryption-passphrase-file", str(passfile), dest.url, SERVER
    )
    assert created.returncode == 0, created.stderr
    chown_tree(dest.url.removeprefix("file://"))  # archive_command runs as postgres
    return dest


@pytest.fixture
def encrypted(
    keyed: TestDestination, pgvault_bin: str
) -> Iterator[tuple[TestDestination, Source, str]]:
    """`keyed`, a cluster archiving into it, and one backup taken after a first batch of
    rows."""
    dest = keyed
    source = make_source(dest, pgvault_bin, scale=1)
    try:
        source.cluster.sql("insert into marks select g, 'before' from generate_series(1, 200) g")
        backup_id = source.backup("--lz4")
        yield dest, source, backup_id
    finally:
        source.cluster.drop()


def console(state_dir: str, url: str) -> PgvaultApp:
    return PgvaultApp(ConsoleConfig(state_dir=state_dir, destinations=(url,)))


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("PGVAULT_DEMO_DIR", str(tmp_path / "demo"))
    monkeypatch.delenv("PGVAULT_ENCRYPTION_PASSPHRASE", raising=False)
    monkeypatch.delenv("PGVAULT_ENCRYPTION_IDENTITY", raising=False)
    return str(tmp_path / "state")


async def submitted_job_succeeds(app: PgvaultApp, pilot: Pilot[Any], kind: str) -> Job:
    """Submit the shown form; the job it starts, once it succeeded."""
    await pilot.press("ctrl+s")
    await settle(pilot, lambda: isinstance(app.screen, JobsScreen), timeout=20)
    job_id = max(app.state.jobs)
    assert app.state.jobs[job_id].kind == kind
    await settle(pilot, lambda: app.state.jobs[job_id].final, timeout=300)
    job = app.state.jobs[job_id]
    assert job.state is JobState.SUCCEEDED, job.error
    return job


async def unlock(app: PgvaultApp, pilot: Pilot[Any], key: str) -> None:
    """Unlock the server of backup `key` (SERVER/ID) with PASSPHRASE, from its catalog row."""
    await open_catalog_on(app, pilot, key)
    await pilot.press("u")
    await settle(pilot, lambda: isinstance(app.screen, UnlockScreen))
    app.screen.query_one("#passphrase", Input).value = PASSPHRASE
    await pilot.press("ctrl+s")
    await settle(pilot, lambda: isinstance(app.screen, CatalogScreen), timeout=30)


async def new_backup_form(
    app: PgvaultApp, pilot: Pilot[Any], dest: TestDestination, cluster: Cluster
) -> NewBackupScreen:
    """`n`, the form filled in for SERVER of `cluster` into `dest`."""
    await pilot.press("n")
    await settle(pilot, lambda: isinstance(app.screen, NewBackupScreen))
    form = app.screen
    assert isinstance(form, NewBackupScreen)
    fields = {
        "server": SERVER,
        "destination": dest.url,
        "host": cluster.sock,
        "port": str(cluster.port),
        "user": "postgres",
    }
    for name, value in fields.items():
        form.query_one(f"#{name}", Input).value = value
    return form


def screen_text(app: PgvaultApp) -> str:
    return "\n".join(str(s.render()) for s in app.screen.query(Static))


async def test_contents_open_with_the_passphrase_and_a_wrong_one_is_named(
    encrypted: tuple[TestDestination, Source, str], state_dir: str
) -> None:
    dest, _, backup_id = encrypted
    app = console(state_dir, dest.url)
    async with app.run_test(size=(100, 30)) as pilot:
        catalog = await open_catalog_on(app, pilot, f"{SERVER}/{backup_id}")
        assert "encrypted" in str(catalog.query_one("#backup-summary", Static).render())
        assert "u Unlock" in str(catalog.query_one("KeyBar").render())
        assert f"Unlock backup {backup_id} of {SERVER} (DONE)" in palette_titles(app)

        # r on a locked backup asks for the key first; abandoning it starts nothing.
        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, UnlockScreen))
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, CatalogScreen))
        assert not app.state.jobs

        # Its contents ask for the key as the backup's screen opens; esc leaves that screen.
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, UnlockScreen))
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, BackupScreen))
        screen = app.screen
        assert isinstance(screen, BackupScreen)
        await settle(pilot, lambda: "encrypted manifest" in screen_text(app), timeout=20)
        assert screen.query_one("#tables", ResponsiveTable).row_count == 0

        await pilot.press("u")
        await settle(pilot, lambda: isinstance(app.screen, UnlockScreen))
        form = app.screen
        field = form.query_one("#passphrase", Input)
        assert field.password  # masked
        field.value = "not the passphrase"
        await pilot.press("ctrl+s")
        status = form.query_one("#form-status", Static)
        await settle(pilot, lambda: "wrong" in str(status.render()).lower(), timeout=30)
        assert isinstance(app.screen, UnlockScreen)

        field.value = PASSPHRASE
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: isinstance(app.screen, BackupScreen), timeout=30)
        tables = screen.query_one("#tables", ResponsiveTable)
        await settle(pilot, lambda: tables.row_count > 0, timeout=20)
        assert screen.manifest is not None
        assert "pgbench_accounts" in {t.name for t in screen.manifest.tables}
        assert PASSPHRASE not in screen_text(app)
    assert_no_passphrase(state_dir)


async def test_an_unlocked_console_takes_an_incremental_and_restores_its_chain(
    encrypted: tuple[TestDestination, Source, str], state_dir: str
) -> None:
    dest, source, backup_id = encrypted
    cluster = source.cluster
    target = new_target()
    app = console(state_dir, dest.url)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await unlock(app, pilot, f"{SERVER}/{backup_id}")

            # An incremental from the form: planning it reads the parent's sealed manifest
            # with the keys the console hands to the job (else it would be a full backup).
            cluster.sql(
                "insert into marks select g, 'incremental' from generate_series(201, 400) g"
            )
            form = await new_backup_form(app, pilot, dest, cluster)
            form.query_one("#kind", Select).value = "incremental"
            await pilot.pause(0.2)
            job = await submitted_job_succeeds(app, pilot, "backup")
            incremental_id = str(job.details.backup_id)
            label = display_url(dest.url)
            await settle(
                pilot,
                lambda: (
                    (server := app.state.destinations[label].server(SERVER)) is not None
                    and server.kind(incremental_id) == "incremental"
                    # A listing taken while the job ran shows it unfinished, and v is no key
                    # on an unfinished backup: wait for the one taken after it ended.
                    and any(
                        b.backup_id == incremental_id and b.status == DONE for b in server.backups
                    )
                ),
                timeout=60,
            )

            # v verifies the chain with the same keys (its parts, manifests and WAL sealed).
            await open_catalog_on(app, pilot, f"{SERVER}/{incremental_id}")
            await pilot.press("v")
            await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await settle(pilot, lambda: isinstance(app.screen, JobsScreen), timeout=20)
            verify_id = max(app.state.jobs)
            assert app.state.jobs[verify_id].kind == "verify"
            await settle(pilot, lambda: app.state.jobs[verify_id].final, timeout=120)
            verified = app.state.jobs[verify_id]
            assert verified.state is JobState.SUCCEEDED, verified.error

            cluster.sql("insert into marks select g, 'after' from generate_series(401, 600) g")
            source.archive_everything()
            expected = cluster.table_checksums()

            # Its restore reads the chain, and its server replays the encrypted WAL.
            await open_catalog_on(app, pilot, f"{SERVER}/{incremental_id}")
            await pilot.press("r")
            await settle(pilot, lambda: isinstance(app.screen, RestoreScreen), timeout=30)
            app.screen.query_one("#directory", Input).value = target.data
            job = await submitted_job_succeeds(app, pilot, "restore")
            assert job.result_as(RestoreJobResult).backup_id == incremental_id
        # An empty environment: restore_command has only what the restore wrote for it.
        with restored_server(target, cluster.bindir) as server:
            wait_for_recovery_end(server)
            assert server.table_checksums() == expected
    finally:
        target.drop()
    assert_no_passphrase(state_dir)


async def test_a_killed_encrypted_backup_is_resumed_from_the_console_with_its_keys(
    encrypted: tuple[TestDestination, Source, str], state_dir: str, tmp_path: Path
) -> None:
    """r on the failed job resumes it: the new job gets the held keys in its environment
    (without them its key file is locked and the resume fails at once)."""
    dest, source, first_id = encrypted
    cluster = source.cluster
    app = console(state_dir, dest.url)
    async with app.run_test(size=(100, 30)) as pilot:
        await unlock(app, pilot, f"{SERVER}/{first_id}")
        form = await new_backup_form(app, pilot, dest, cluster)
        form.query_one("#bandwidth", Input).value = "2MB"  # slow enough to be killed mid-way
        await pilot.pause(0.2)
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen), timeout=20)
        killed = max(app.state.jobs)
        await settle(pilot, lambda: app.state.jobs[killed].bytes_done > 4 << 20, timeout=120)
        pid = app.state.jobs[killed].pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await settle(
            pilot, lambda: app.state.jobs[killed].state is JobState.FAILED, timeout=DEAD_AFTER + 30
        )
        backup_id = str(app.state.jobs[killed].details.backup_id)

        # Its part is never continued by chunk (a new age stream never matches the old):
        # no record of its chunks, which would list its files' paths in clear.
        with dest.store() as store:
            prefix = f"{SERVER}/base/{backup_id}/pgvault-upload/"
            assert [o.key for o in store.list_objects(prefix)] == []

        # From the command line without a key, the resume cannot read the manifest it
        # continues: it says where it can be resumed (exit 1), and the backup stays resumable.
        keyless = pgvault("jobs", "resume", str(killed), env={"PGVAULT_STATE_DIR": state_dir})
        assert keyless.returncode == 1, keyless.stderr
        assert "resume it where the key is held" in keyless.stderr
        assert "Traceback" not in keyless.stderr
        await settle(pilot, lambda: max(app.state.jobs) > killed, timeout=20)
        attempted = max(app.state.jobs)

        table = app.screen.query_one("#jobs", ResponsiveTable)
        await settle(pilot, lambda: table.current_key == str(killed), timeout=10)
        await pilot.press("r")
        await settle(pilot, lambda: max(app.state.jobs) > attempted, timeout=20)
        resumed = app.state.jobs[max(app.state.jobs)]
        assert resumed.resumed_from == killed
        await settle(pilot, lambda: app.state.jobs[resumed.id].final, timeout=300)
        done = app.state.jobs[resumed.id]
        assert done.state is JobState.SUCCEEDED, done.error
        assert str(done.details.backup_id) == backup_id  # the same backup, completed
    passfile = str(tmp_path / "secrets" / "pass")  # the `keyed` fixture's
    verified = pgvault("verify", "--encryption-passphrase-file", passfile, dest.url, SERVER,
                       backup_id)  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    listing = pgvault("backup-list", "--format", "json", dest.url, SERVER)
    (entry,) = [
        b for b in json.loads(listing.stdout)["backups_list"] if b["backup_id"] == backup_id
    ]
    assert entry["status"] == "DONE" and entry["pgvault"]["encrypted"] is True
    assert_no_passphrase(state_dir)


async def test_a_console_started_with_the_key_asks_for_nothing(
    encrypted: tuple[TestDestination, Source, str],
    state_dir: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dest, _, backup_id = encrypted
    # `pgvault --encryption-passphrase-file F` puts the key where its jobs find it; a file
    # others can read is refused before the console opens.
    loose = tmp_path / "loose"
    loose.write_text(PASSPHRASE + "\n")
    loose.chmod(0o644)
    refused = subprocess.run(
        [PGVAULT, "--state-dir", state_dir, "--encryption-passphrase-file", str(loose)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 3, refused.stderr
    assert "group or others can access it" in refused.stderr
    assert PASSPHRASE not in refused.stderr

    monkeypatch.setenv("PGVAULT_ENCRYPTION_PASSPHRASE", PASSPHRASE)
    app = console(state_dir, dest.url)
    async with app.run_test(size=(100, 30)) as pilot:
        catalog = await open_catalog_on(app, pilot, f"{SERVER}/{backup_id}")
        summary = str(catalog.query_one("#backup-summary", Static).render())
        assert "opened with the key the console started with" in summary
        assert "u Unlock" not in str(catalog.query_one("KeyBar").render())
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, BackupScreen))
        screen = app.screen
        assert isinstance(screen, BackupScreen)
        tables = screen.query_one("#tables", ResponsiveTable)
        await settle(pilot, lambda: tables.row_count > 0, timeout=30)
        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, RestoreScreen))


async def test_a_locked_logical_backup_is_unlocked_and_restored_under_a_new_name(
    keyed: TestDestination, state_dir: str
) -> None:
    dest = keyed
    cluster = make_cluster()
    try:
        make_shop(cluster)
        # A host without the passphrase writes it (the key file's clear recipient).
        made = pgvault("backup", dest.url, SERVER, *cluster.conninfo_args(), "--database", SHOP)
        assert made.returncode == 0, made.stderr
        backup_id = made.stdout.strip()
        app = console(state_dir, dest.url)
        async with app.run_test(size=(100, 30)) as pilot:
            catalog = await open_catalog_on(app, pilot, f"{SERVER}/{backup_id}")
            table = catalog.query_one("#backups", ResponsiveTable)
            key = f"{SERVER}/{backup_id}"
            assert table.get_cell(key, "status").plain == "LOCKED"
            await pilot.press("u")
            await settle(pilot, lambda: isinstance(app.screen, UnlockScreen))
            app.screen.query_one("#passphrase", Input).value = PASSPHRASE
            await pilot.press("ctrl+s")
            await settle(pilot, lambda: isinstance(app.screen, CatalogScreen), timeout=30)
            # Listed again with the key: its logical.json is read, the backup is DONE.
            await settle(pilot, lambda: table.get_cell(key, "status").plain == "DONE", timeout=30)
            await pilot.press("r")
            await settle(pilot, lambda: isinstance(app.screen, LogicalRestoreScreen))
            form = app.screen
            values = {
                "host": cluster.sock,
                "port": str(cluster.port),
                "user": "postgres",
                "new_db_name": "shop_unlocked",
            }
            for name, value in values.items():
                form.query_one(f"#{name}", Input).value = value
            await submitted_job_succeeds(app, pilot, "logical-restore")
        assert cluster.table_checksums("shop_unlocked") == cluster.table_checksums(SHOP)
    finally:
        cluster.drop()
    assert_no_passphrase(state_dir)


def test_the_console_started_with_a_passphrase_file_in_a_real_terminal(
    encrypted: tuple[TestDestination, Source, str], tmp_path: Path
) -> None:
    dest, _, backup_id = encrypted
    env = {
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "PGVAULT_STATE_DIR": str(tmp_path / "state"),
        "PGVAULT_DEMO_DIR": str(tmp_path / "demo"),
        "TERM": "xterm-256color",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
    }
    passfile = str(tmp_path / "secrets" / "pass")  # the `keyed` fixture's, mode 0600
    terminal = Terminal(
        f"pgvault-enc-{os.getpid()}",
        [PGVAULT, "--encryption-passphrase-file", passfile, dest.url],
        env,
    )
    try:
        terminal.wait_for("1 Jobs", "2 Catalog", timeout=60)
        terminal.keys("2")
        terminal.wait_for(backup_id, timeout=60)
        terminal.keys("Tab")  # into the backups table: the summary shows under it
        # At 80x24 the summary's first line says encrypted; no u: the console holds the key.
        screen = terminal.wait_for("encrypted", "r Restore", timeout=30)
        assert "u Unlock" not in screen
        terminal.keys("Enter")  # its contents open with that key: nothing asked
        screen = terminal.wait_for("pgbench_accounts", timeout=30)
        assert "Unlock server" not in screen and PASSPHRASE not in screen
    finally:
        terminal.close()


def assert_no_passphrase(state_dir: str) -> None:
    """Neither the job store nor any job's log holds the passphrase."""
    for path in Path(state_dir).rglob("*"):
        try:
            data = path.read_bytes() if path.is_file() else b""
        except FileNotFoundError:
            continue  # SQLite's jobs.db-shm and -wal go when the last connection closes
        assert PASSPHRASE.encode() not in data, path


async def test_an_unreadable_identity_file_keeps_the_focus_on_its_field(
    keyed: TestDestination, state_dir: str, tmp_path: Path
) -> None:
    """Seen in tmux: an identity file that cannot be read was named, and the focus went to
    Passphrase; shift+tab (to go back to the path) then reached Cancel and enter closed the
    form. The focus stays on the field the error is about."""
    from core.catalog.backup_info import BackupInfo
    from tui.adapter import BackupRef

    ref = BackupRef(keyed.url, keyed.url, SERVER, BackupInfo("20260101T000000"), encrypted=True)
    app = console(state_dir, keyed.url)
    async with app.run_test(size=(80, 24)) as pilot:
        form = UnlockScreen(ref)
        app.push_screen(form)
        await settle(pilot, lambda: bool(form.is_mounted and form.query("#identity")))
        form.query_one("#identity", Input).value = str(tmp_path / "no-such-identity.txt")
        await pilot.press("ctrl+s")
        status = form.query_one("#form-status", Static)
        await settle(pilot, lambda: "no-such-identity" in str(status.render()), timeout=30)
        await pilot.pause(0.2)
        assert form.focused is form.query_one("#identity", Input)

        # A wrong passphrase alone: the focus on Passphrase, as before.
        form.query_one("#identity", Input).value = ""
        form.query_one("#passphrase", Input).value = "not the passphrase"
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: "wrong" in str(status.render()).lower(), timeout=30)
        await pilot.pause(0.2)
        assert form.focused is form.query_one("#passphrase", Input)


async def test_retrying_a_failed_backup_of_a_locked_server_asks_for_the_key_first(
    encrypted: tuple[TestDestination, Source, str], state_dir: str
) -> None:
    """Seen in tmux: `r` on a failed backup job of an encrypted server, in a console that had
    not unlocked it, started a resume job that failed at once ("the key file of server pg2
    is locked ... resume it where the key is held"). It opens the unlock form first, as `r`
    and `v` on a locked backup do; esc starts nothing, the passphrase starts the resume."""
    from core.backup.job import BACKUP
    from core.backup.request import make_backup_request
    from core.jobs import JobStore
    from core.urls import parse_location

    dest, _, _ = encrypted
    location = parse_location(dest.url)
    with JobStore.open(state_dir) as store:
        failed = store.create(
            "backup",
            description=f"backup of {SERVER}",
            server=SERVER,
            destination=location.display(),
            options=BACKUP.options(make_backup_request(location, SERVER)),
        ).id
        store.transition(failed, JobState.FAILED, error="lost")
    app = console(state_dir, dest.url)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_catalog_on(app, pilot, f"{SERVER}/{encrypted[2]}")  # listed, locked
        await pilot.press("1")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen))
        table = app.screen.query_one("#jobs", ResponsiveTable)
        await settle(pilot, lambda: str(failed) in table.keys)
        table.focus()
        assert table.select_key(str(failed))
        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, UnlockScreen))
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen))
        await pilot.pause(0.5)
        assert max(app.state.jobs) == failed  # nothing started

        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, UnlockScreen))
        app.screen.query_one("#passphrase", Input).value = PASSPHRASE
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: max(app.state.jobs) > failed, timeout=30)
        assert app.state.jobs[max(app.state.jobs)].resumed_from == failed
    assert_no_passphrase(state_dir)
