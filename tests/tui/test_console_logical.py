"""Logical backups in the console, on a real PostgreSQL and a real logical backup of it.

The catalog lists the logical backup beside the physical series (KIND logical, what it
holds), its screen shows each table's row estimate and size from logical.json, and the
restore form starts the same `logical-restore` job as `pgvault --batch restore --database`:
the database restored under a new name, and tables into an existing database, are compared
with the source.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from textual.widgets import Checkbox, Input, Select

from core.jobs import Job, JobFilter, JobState, JobStore
from core.jobs.results import LogicalJobResult
from core.logical.catalog import get_logical
from core.logical.layout import LogicalLayout
from core.logical.manifest import LogicalManifest
from core.storage import open_store
from core.urls import parse_location
from tests.support.cli import pgvault, spawn
from tests.support.console import make_app, open_catalog_on, settle
from tests.support.jobs import wait_for
from tests.support.logical import BINDIRS_ENV, SHOP, make_big, make_shop, pg_dumps
from tests.support.postgres import Cluster, make_cluster, world_dir
from tui.app import PgvaultApp
from tui.modals.confirm import ConfirmScreen
from tui.modals.logical_restore import LogicalRestoreScreen
from tui.modals.new_backup import LOGICAL, NewBackupScreen
from tui.screens.backup import BackupScreen
from tui.screens.jobs import JobsScreen
from tui.widgets.table import ResponsiveTable

SERVER = "shop-srv"


@dataclass(frozen=True)
class Taken:
    cluster: Cluster
    url: str
    manifest: LogicalManifest


@pytest.fixture(scope="module")
def taken() -> Iterator[Taken]:
    """A PostgreSQL 15 cluster with the shop database and one logical backup of it."""
    cluster = make_cluster()
    root = world_dir("pgvault-console-logical-")
    url = f"file://{root}"
    try:
        make_shop(cluster)
        result = pgvault(
            "backup", url, SERVER, *cluster.conninfo_args(), "--database", SHOP, "-n", "nightly"
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        with open_store(parse_location(url)) as store:
            manifest = get_logical(store, SERVER, result.stdout.strip())
        yield Taken(cluster, url, manifest)
    finally:
        cluster.drop()
        shutil.rmtree(root, ignore_errors=True)


def restore_jobs(state_dir: str) -> list[Job]:
    with JobStore.open(state_dir) as store:
        return store.list_jobs(JobFilter(kinds=("logical-restore",)))


async def test_the_catalog_lists_a_logical_backup_and_its_tables(
    taken: Taken, tmp_path: object
) -> None:
    backup_id = taken.manifest.backup_id
    app = make_app(str(tmp_path), taken.url)
    async with app.run_test(size=(120, 30)) as pilot:
        catalog = await open_catalog_on(app, pilot, f"{SERVER}/{backup_id}")
        table = catalog.query_one("#backups", ResponsiveTable)
        key = f"{SERVER}/{backup_id}"
        assert table.get_cell(key, "kind").plain == "logical"
        assert table.get_cell(key, "status").plain == "DONE"
        assert table.get_cell(key, "backup").plain == f"{backup_id} nightly"
        tables = len(taken.manifest.databases[0].tables)
        summary = str(catalog.query_one("#backup-summary").render())
        assert f"{backup_id} nightly  DONE  logical" in summary
        assert f"{SHOP} ({tables} tables)" in summary
        keys = str(catalog.query_one("KeyBar").render())
        assert "r Restore" in keys and "D Delete" in keys and "Verify" not in keys

        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, BackupScreen) and app.screen.loaded)
        detail = app.screen
        assert isinstance(detail, BackupScreen)
        rows = detail.query_one("#tables", ResponsiveTable)
        await settle(pilot, lambda: rows.row_count == tables)
        shown = {rows.get_cell(k, "table").plain: rows.get_cell(k, "rows").plain for k in rows.keys}
        assert shown["sales.orders"] == "2 000"  # reltuples after the shop's analyze
        assert shown["sales.order_lines"] == "6 000"
        info = str(detail.query_one("#backup-info").render())
        assert f"logical backup {backup_id} (nightly)" in info
        assert f"holds {SHOP} ({tables} tables)" in info


async def fill(app: PgvaultApp, taken: Taken, **values: str) -> LogicalRestoreScreen:
    form = app.screen
    assert isinstance(form, LogicalRestoreScreen)
    cluster = taken.cluster
    connection = {"host": cluster.sock, "port": str(cluster.port), "user": "postgres"}
    for field, value in {**connection, **values}.items():
        form.query_one(f"#{field}", Input).value = value
    return form


async def test_the_restore_form_restores_the_database_under_a_new_name(
    taken: Taken, tmp_path: object
) -> None:
    state_dir = str(tmp_path)
    app = make_app(state_dir, taken.url)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_catalog_on(app, pilot, f"{SERVER}/{taken.manifest.backup_id}")
        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, LogicalRestoreScreen))
        form = await fill(app, taken, into_db="other")
        assert form.value("database") == SHOP  # the backup's one database
        assert form.value("backup") == taken.manifest.backup_id
        status = form.query_one("#form-status")
        await pilot.press("ctrl+s")  # --into-db without tables: core's own rule, in the
        # form's words (the form has no --into-db: it has the Into database field)
        said = "the Into database field restores tables (the Tables field)"
        await settle(pilot, lambda: said in str(status.render()))
        assert "--" not in str(status.render())
        assert restore_jobs(state_dir) == []

        await fill(app, taken, into_db="", new_db_name="shop_console", bandwidth="50MB")
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen), timeout=20)
        (job,) = restore_jobs(state_dir)
        assert job.server == SERVER and job.options.get("new_db_name") == "shop_console"
        assert job.options["store_config"]["max_download_bandwidth"] == 50 * 1024 * 1024
        jobs = app.screen.query_one("#jobs", ResponsiveTable)
        await settle(pilot, lambda: jobs.current_key == str(job.id), timeout=10)
        await settle(pilot, lambda: restore_jobs(state_dir)[0].final, timeout=120)
        done = restore_jobs(state_dir)[0]
        assert done.state is JobState.SUCCEEDED, done.error
        assert done.bytes_done > 0  # its progress: the dump files it downloaded
    source = taken.cluster
    assert source.table_checksums("shop_console") == source.table_checksums(SHOP)
    source.sql('drop database "shop_console"')


async def restore_tables(state_dir: str, taken: Taken, clean: bool) -> None:
    """sales.customers into the existing database `other`, from the form."""
    app = make_app(state_dir, taken.url)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_catalog_on(app, pilot, f"{SERVER}/{taken.manifest.backup_id}")
        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, LogicalRestoreScreen))
        form = await fill(app, taken, tables="sales.customers", into_db="other")
        form.query_one("#clean", Checkbox).value = clean
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen), timeout=20)
        await settle(pilot, lambda: all(j.final for j in restore_jobs(state_dir)), timeout=120)


async def test_tables_restore_into_an_existing_database_and_clean_replaces_them(
    taken: Taken, tmp_path: object
) -> None:
    state_dir = str(tmp_path)
    source = taken.cluster
    source.sql("create database other")
    try:
        await restore_tables(state_dir, taken, clean=False)
        (first,) = restore_jobs(state_dir)
        assert first.state is JobState.SUCCEEDED, first.error
        source.sql("insert into sales.customers (name) values ('x')", dbname="other")
        await restore_tables(state_dir, taken, clean=True)  # over the first: replaced
        assert [j.state for j in restore_jobs(state_dir)] == [JobState.SUCCEEDED] * 2
        restored = source.table_checksums("other")
        assert restored == {"sales.customers": source.table_checksums(SHOP)["sales.customers"]}
    finally:
        source.sql("drop database other")


async def test_d_deletes_a_logical_backup_once_confirmed(taken: Taken, tmp_path: object) -> None:
    cluster = taken.cluster
    made = pgvault(
        "backup", taken.url, SERVER, *cluster.conninfo_args(),
        "--database", SHOP, "--table", "sales.customers",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    backup_id = made.stdout.strip()
    prefix = LogicalLayout(SERVER).backup_prefix(backup_id)
    with open_store(parse_location(taken.url)) as store:
        assert list(store.list_objects(prefix))
    app = make_app(str(tmp_path), taken.url)
    async with app.run_test(size=(80, 24)) as pilot:
        catalog = await open_catalog_on(app, pilot, f"{SERVER}/{backup_id}")
        await pilot.press("D")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Delete logical backup" in str(app.screen.query_one("#dialog-title").render())
        await pilot.press("y")
        table = catalog.query_one("#backups", ResponsiveTable)
        await settle(pilot, lambda: f"{SERVER}/{backup_id}" not in table.keys, timeout=30)
        assert f"{SERVER}/{taken.manifest.backup_id}" in table.keys  # the other one stays
    with open_store(parse_location(taken.url)) as store:
        assert not list(store.list_objects(prefix))


async def test_an_all_databases_backup_restores_whole_from_the_form(
    taken: Taken, tmp_path: object
) -> None:
    """Into its own server with clean: the role dropped since comes back, every database is
    replaced (a row deleted since is back), the empty maintenance database is skipped."""
    state_dir, cluster = str(tmp_path), taken.cluster
    cluster.sql("create role console_role nologin")
    made = pgvault("backup", taken.url, SERVER, *cluster.conninfo_args(), "--all-databases")
    assert made.returncode == 0, made.stderr
    backup_id = made.stdout.strip()
    before = cluster.table_checksums(SHOP)
    cluster.sql("drop role console_role")
    cluster.sql("delete from sales.order_lines where line = 3", dbname=SHOP)
    app = make_app(state_dir, taken.url)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_catalog_on(app, pilot, f"{SERVER}/{backup_id}")
        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, LogicalRestoreScreen))
        form = await fill(app, taken)
        assert form.value("database") == ""  # several: the operator chooses, or all
        form.query_one("#clean", Checkbox).value = True
        form.query_one("#all_databases", Checkbox).value = True
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen), timeout=20)
        await settle(pilot, lambda: all(j.final for j in restore_jobs(state_dir)), timeout=180)
    (job,) = restore_jobs(state_dir)
    assert job.state is JobState.SUCCEEDED, job.error
    assert job.options.get("all_databases") is True
    assert cluster.one("select count(*) from pg_roles where rolname = 'console_role'") == 1
    assert cluster.table_checksums(SHOP) == before


async def test_an_interrupted_logical_backup_is_listed_and_what_it_left_deleted(
    tmp_path: Path,
) -> None:
    """A logical backup still dumping is listed STARTED and cannot be deleted; killed, it is
    ABANDONED with its reason, never restorable, and D removes what it left."""
    cluster = make_cluster()
    root = world_dir("pgvault-console-unfinished-")
    url, server = f"file://{root}", "killed-srv"
    staging = tmp_path / "staging"
    staging.mkdir()
    proc = None
    try:
        make_shop(cluster)
        make_big(cluster)
        proc = spawn(
            "backup", url, server, *cluster.conninfo_args(), "--database", SHOP, "--gzip",
            "--staging-dir", str(staging), "--staging-limit", "1", "--max-bandwidth", "200KB",
            env=BINDIRS_ENV,
        )  # fmt: skip
        layout = LogicalLayout(server)
        with open_store(parse_location(url)) as store:
            wait_for(
                lambda: (
                    [o for o in store.list_objects(layout.prefix) if "/db/" in o.key]
                    and pg_dumps(staging)
                ),
                timeout=120,
                what="a dump file stored while pg_dump runs",
            )
            (backup_id,) = {o.key.split("/")[2] for o in store.list_objects(layout.prefix)}
        key = f"{server}/{backup_id}"

        app = make_app(str(tmp_path / "state"), url)
        async with app.run_test(size=(120, 30)) as pilot:
            catalog = await open_catalog_on(app, pilot, key)
            table = catalog.query_one("#backups", ResponsiveTable)
            assert table.get_cell(key, "status").plain == "STARTED"
            assert table.get_cell(key, "kind").plain == "logical"
            keys = str(catalog.query_one("KeyBar").render())
            assert "r Restore" not in keys and "D Delete" in keys
            await pilot.press("D")
            await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await settle(
                pilot,
                lambda: any("may still be running" in str(n.message) for n in app._notifications),
                timeout=30,
            )
        with open_store(parse_location(url)) as store:
            assert list(store.list_objects(layout.backup_prefix(backup_id)))

        proc.kill()
        proc.communicate(timeout=60)
        wait_for(lambda: not pg_dumps(staging), timeout=30, what="pg_dump to die with pgvault")

        app = make_app(str(tmp_path / "state"), url)
        async with app.run_test(size=(120, 30)) as pilot:
            catalog = await open_catalog_on(app, pilot, key)
            table = catalog.query_one("#backups", ResponsiveTable)
            assert table.get_cell(key, "status").plain == "ABANDONED"
            summary = str(catalog.query_one("#backup-summary").render())
            assert "no logical.json yet" in summary and "is gone" in summary, summary
            await pilot.press("r")  # nothing of it can be restored: r is not offered
            await pilot.pause(0.3)
            assert app.screen is catalog
            await pilot.press("enter")  # its screen says what it is, with nothing to list
            await settle(pilot, lambda: isinstance(app.screen, BackupScreen))
            heading = str(app.screen.query_one("#backup-info").render())
            assert "ABANDONED" in heading and "no logical.json yet" in heading, heading
            await pilot.press("escape")
            await settle(pilot, lambda: app.screen is catalog)
            await pilot.press("D")
            await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            title = str(app.screen.query_one("#dialog-title").render())
            assert "Delete unfinished logical backup" in title
            await pilot.press("y")
            await settle(pilot, lambda: key not in table.keys, timeout=30)
        with open_store(parse_location(url)) as store:
            assert not list(store.list_objects(layout.prefix))
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=60)
        cluster.drop()
        shutil.rmtree(root, ignore_errors=True)


async def test_a_logical_backup_whose_manifest_cannot_be_read_is_listed_broken(
    taken: Taken, tmp_path: Path
) -> None:
    """As backup-list does: a BROKEN row with why, never restorable, never left out."""
    root = world_dir("pgvault-console-broken-")
    try:
        source = taken.url.removeprefix("file://")
        shutil.copytree(source, root, dirs_exist_ok=True)
        backup_id = taken.manifest.backup_id
        Path(root, LogicalLayout(SERVER).manifest(backup_id)).write_text('{"torn')
        app = make_app(str(tmp_path / "state"), f"file://{root}")
        key = f"{SERVER}/{backup_id}"
        async with app.run_test(size=(120, 30)) as pilot:
            catalog = await open_catalog_on(app, pilot, key)
            table = catalog.query_one("#backups", ResponsiveTable)
            assert table.get_cell(key, "status").plain == "BROKEN"
            summary = str(catalog.query_one("#backup-summary").render())
            assert "cannot be read" in summary, summary
            assert "r Restore" not in str(catalog.query_one("KeyBar").render())
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def test_the_new_backup_form_takes_a_logical_backup(taken: Taken, tmp_path: object) -> None:
    """Driving the console in tmux, an operator could not start a logical backup from it:
    `n` offered full, incremental and differential only. Kind `logical` runs the same
    `logical-backup` job as `pgvault --batch backup --database NAME`."""
    state_dir = str(tmp_path)
    cluster = taken.cluster
    app = make_app(state_dir, taken.url)
    async with app.run_test(size=(100, 34)) as pilot:
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, NewBackupScreen))
        form = app.screen
        assert isinstance(form, NewBackupScreen)
        fields = {
            "server": SERVER,
            "destination": taken.url,
            "host": cluster.sock,
            "port": str(cluster.port),
            "user": "postgres",
            "dbname": SHOP,
            "name": "",
        }
        for field, value in fields.items():
            form.query_one(f"#{field}", Input).value = value
        form.query_one("#kind", Select).value = LOGICAL
        form.query_one("#compression", Select).value = "bzip2"
        status = form.query_one("#form-status")
        await pilot.press("ctrl+s")  # pg_dump has no bzip2: said in the form, no job
        await settle(pilot, lambda: "not available for a logical backup" in str(status.render()))
        form.query_one("#compression", Select).value = "gzip"
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen), timeout=20)
        with JobStore.open(state_dir) as store:
            (job,) = store.list_jobs(JobFilter(kinds=("logical-backup",)))
            assert store.list_jobs(JobFilter(kinds=("backup",))) == []
        assert job.server == SERVER and job.options.get("database") == SHOP
        await settle(pilot, lambda: job_of(state_dir, job.id).final, timeout=180)
        done = job_of(state_dir, job.id)
        assert done.state is JobState.SUCCEEDED, done.error
        backup_id = done.result_as(LogicalJobResult).backup_id
    with open_store(parse_location(taken.url)) as store:
        manifest = get_logical(store, SERVER, backup_id)
    assert [db.name for db in manifest.databases] == [SHOP]
    assert manifest.compression == "gzip"


def job_of(state_dir: str, job_id: int) -> Job:
    with JobStore.open(state_dir) as store:
        return store.get(job_id)


async def test_a_failed_logical_restore_names_the_forms_fields_in_the_console(
    taken: Taken, tmp_path: object
) -> None:
    """The database restored under its own name on the server that has it, without Clean:
    the job fails, and its error (core's, for the command line: "with --new-db-name, or
    pass --clean") was shown as it is on the jobs view and in the job detail, naming flags
    the form does not have. The console now says it in the form's words; the job store
    keeps core's message (what `pgvault --batch jobs show` prints)."""
    from tui.screens.job_detail import JobDetailScreen

    state_dir = str(tmp_path)
    app = make_app(state_dir, taken.url)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_catalog_on(app, pilot, f"{SERVER}/{taken.manifest.backup_id}")
        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, LogicalRestoreScreen))
        form = await fill(app, taken)
        assert form.value("database") == SHOP and not form.value("new_db_name")
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: isinstance(app.screen, JobsScreen), timeout=20)
        await settle(pilot, lambda: restore_jobs(state_dir)[0].final, timeout=120)
        (job,) = restore_jobs(state_dir)
        assert job.state is JobState.FAILED and "pass --clean" in (job.error or ""), job.error
        jobs = app.screen.query_one("#jobs", ResponsiveTable)
        await settle(pilot, lambda: jobs.current_key == str(job.id), timeout=10)
        selected = app.screen.query_one("#selected-facts")
        said = "with the New name field, or set the Clean field to replace it"
        await settle(pilot, lambda: said in str(selected.render()), timeout=10)
        assert "--" not in str(selected.render())

        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, JobDetailScreen))
        facts = app.screen.query_one("#detail-facts")
        await settle(pilot, lambda: said in str(facts.render()).replace("\n", " "), timeout=10)
        assert "--" not in str(facts.render())
