"""View 4, protection: every instance of the vaults this host knows, with its health, policy,
last success, next slot and RPO, on a fixed vault and a fixed clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from textual.pilot import Pilot
from textual.widgets import DataTable

from core.protection.model import (
    BackupInstance,
    Datasource,
    InstanceError,
    ProtectionState,
    RunRecord,
    RunState,
    RunTrigger,
    SecondaryRetention,
    Vault,
)
from core.protection.policy_read import parse_policy
from core.protection.registry import Registry, VaultEntry
from core.protection.status import Health, InstanceStatus
from core.protection.vaultstore import VaultStore
from core.storage import open_store
from core.urls import parse_location
from tests.core.protection.policies import osspol5_text, template_text
from tests.support.console import NOW, make_app, settle
from tests.tui.conftest import FIXED
from tui.screens.protection import ProtectionScreen, detail

SnapCompare = Callable[..., bool]
CLOCK = datetime.fromtimestamp(NOW, UTC)
#: (instance, policy, days since the last success or None, stopped)
INSTANCES = (
    ("sales-db", "osspol5", 2, False),
    ("hr-db", "weekly", 12, False),
    ("billing-db", "weekly", 20, False),
    ("legacy-db", "weekly", None, True),
)


def write_vault(state_dir: str) -> None:
    """A vault `prod` in a local directory with two policies and four instances."""
    url = f"file://{FIXED / 'vault'}"
    Registry(state_dir).add(VaultEntry("prod", url))
    created = CLOCK - timedelta(days=60)
    with open_store(parse_location(url)) as store:
        vault = VaultStore(store, "prod")
        vault.create(Vault("prod", url, None, created))
        vault.create_policy("osspol5", parse_policy(osspol5_text()))
        vault.create_policy("weekly", parse_policy(template_text()))
        for name, policy, days, stopped in INSTANCES:
            state = ProtectionState.STOPPED if stopped else ProtectionState.CONFIGURED
            vault.create_instance(
                BackupInstance(name, name, Datasource("host=/tmp"), policy, state, created)
            )
            if days is None:
                continue
            slot = CLOCK - timedelta(days=days, minutes=20)
            backup_id = slot.strftime("%Y%m%dT%H%M%S")
            record = RunRecord(
                name, slot, "BackupWeekly", RunTrigger.SCHEDULED, RunState.SUCCEEDED,
                "db-1:42", "Default", "7", backup_id, slot + timedelta(minutes=20),
            )  # fmt: skip
            vault.claim_run(record)


def loaded(app: Any) -> Callable[[], bool]:
    def check() -> bool:
        screen = app.screen
        return isinstance(screen, ProtectionScreen) and len(screen.found) == len(INSTANCES)

    return check


async def test_the_view_lists_each_instance_with_its_health(fixed_state: str) -> None:
    write_vault(fixed_state)
    app = make_app(fixed_state)
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.press("4")
        await settle(cast("Pilot[object]", pilot), loaded(app))
        screen = app.screen
        assert isinstance(screen, ProtectionScreen)
        health = {key.split("|")[1]: str(s.health) for key, s in screen.found.items()}
        assert health == {
            "sales-db": "healthy",
            "hr-db": "warning",
            "billing-db": "critical",
            "legacy-db": "warning",
        }
        detail = str(screen.query_one("#protection-detail").render())
        assert "billing-db" in detail
        assert "critical" in detail


def test_the_detail_names_the_secondary_destination_and_its_retention() -> None:
    instance = BackupInstance(
        "sales-db", "sales-db", Datasource("host=/tmp"), "osspol5",
        secondary_destination="s3://dr-bucket/pgvault",
        secondary_retention=SecondaryRetention.FOLLOW,
    )  # fmt: skip
    item = InstanceStatus(
        "prod", instance, "daily at 02:00", None, None, None, Health.WARNING, "no backup", CLOCK
    )
    shown = detail(item).plain
    assert "copies each backup to s3://dr-bucket/pgvault" in shown
    assert "retention's deletions here are repeated there" in shown
    kept = detail(
        replace(item, instance=replace(instance, secondary_retention=SecondaryRetention.KEEP))
    )
    assert "kept there when retention deletes the backup here" in kept.plain
    alone = detail(
        replace(
            item,
            instance=replace(
                instance, secondary_destination=None, secondary_retention=SecondaryRetention.KEEP
            ),
        )
    )
    assert "copies each backup" not in alone.plain
    failing = replace(item, last_error=InstanceError("sales-db", CLOCK, "retention: boom", "a"))
    assert "the agent's last pass failed (" in detail(failing).plain
    assert "retention: boom" in detail(failing).plain


def test_protection_view(snap_compare: SnapCompare, fixed_state: str) -> None:
    write_vault(fixed_state)
    app = make_app(fixed_state)

    async def before(pilot: Pilot[Any]) -> None:
        await pilot.press("4")
        await settle(pilot, loaded(app))
        await pilot.press("j")
        await pilot.pause(0.5)

    assert snap_compare(app, run_before=before, terminal_size=(100, 24))


async def test_an_empty_host_says_how_to_start(fixed_state: str, tmp_path: Path) -> None:
    app = make_app(fixed_state)
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.press("4")
        await pilot.pause(1.0)
        text = str(app.screen.query_one("#protection-detail").render())
        assert "No backup instances" in text


async def test_s_stops_protection_once_confirmed_and_r_resumes_it(fixed_state: str) -> None:
    write_vault(fixed_state)
    app = make_app(fixed_state)
    async with app.run_test(size=(100, 24)) as pilot:
        driver = cast("Pilot[object]", pilot)
        await pilot.press("4")
        await settle(driver, loaded(app))
        screen = app.screen
        assert isinstance(screen, ProtectionScreen)

        def state_of(name: str) -> ProtectionState | None:
            item = screen.found.get(f"prod|{name}")
            return None if item is None else item.instance.state

        await pilot.press("j")  # hr-db
        await pilot.pause(0.3)
        assert screen.current() is not None
        assert not screen.can("resume_protection")
        await pilot.press("s", "n")  # refused: nothing changes
        await pilot.pause(0.5)
        assert state_of("hr-db") is ProtectionState.CONFIGURED
        await pilot.press("s", "y")
        await settle(driver, lambda: state_of("hr-db") is ProtectionState.STOPPED)
        await pilot.pause(0.3)
        await pilot.press("r")
        await settle(driver, lambda: state_of("hr-db") is ProtectionState.CONFIGURED)


async def test_read_only_hides_stop_and_resume(fixed_state: str) -> None:
    write_vault(fixed_state)
    app = make_app(fixed_state, read_only=True)
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.press("4")
        await settle(cast("Pilot[object]", pilot), loaded(app))
        screen = app.screen
        assert isinstance(screen, ProtectionScreen)
        assert screen.check_action("stop_protection", ()) is False
        assert screen.check_action("resume_protection", ()) is False


async def test_a_vault_whose_destination_is_gone_is_one_unavailable_row(
    fixed_state: str,
) -> None:
    write_vault(fixed_state)
    Registry(fixed_state).add(VaultEntry("lost", f"file://{FIXED / 'unmounted'}"))
    app = make_app(fixed_state)
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.press("4")
        await settle(cast("Pilot[object]", pilot), loaded(app))
        screen = app.screen
        assert isinstance(screen, ProtectionScreen)
        table = screen.query_one("#protection-table", DataTable)
        rows = [[str(cell) for cell in table.get_row_at(n)] for n in range(table.row_count)]
        assert ["(all)", "unavailable", "-", "-", "-", "-", "lost"] in rows
        assert len(rows) == len(INSTANCES) + 1  # the other vault's instances as usual
        table.move_cursor(row=rows.index(["(all)", "unavailable", "-", "-", "-", "-", "lost"]))
        await pilot.pause(0.2)
        shown = str(screen.query_one("#protection-detail").render())
        assert "vault lost: unavailable" in shown
        assert "unmounted" in shown  # the reason names its destination


async def test_an_unavailable_vaults_health_is_not_cut_at_80x24(fixed_state: str) -> None:
    """Seen in tmux, at 80x24 and at 200x50 alike: an unavailable vault's row read
    'unavaila' (HEALTH was 8 columns wide). Every health word shows whole, and every
    other column still fits an 80-column terminal."""
    write_vault(fixed_state)
    Registry(fixed_state).add(VaultEntry("lost", f"file://{FIXED / 'unmounted'}"))
    app = make_app(fixed_state)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await settle(cast("Pilot[object]", pilot), loaded(app))
        screen = app.screen
        assert isinstance(screen, ProtectionScreen)
        table = screen.query_one("#protection-table", DataTable)
        await pilot.pause(0.2)
        widths = {str(c.key.value): c.get_render_width(table) for c in table.ordered_columns}
        assert widths["health"] - 2 * table.cell_padding >= len("unavailable"), widths
        assert "rpo" in widths and sum(widths.values()) <= 80, widths


async def test_the_view_reads_the_vaults_again_while_shown(
    fixed_state: str, monkeypatch: Any
) -> None:
    # it read them when shown and never again: health, RPO and next due stayed as they were
    # (12 minutes stale in a review), whatever the agent did meanwhile
    monkeypatch.setattr("tui.screens.protection.REFRESH_SECONDS", 0.2)
    write_vault(fixed_state)
    app = make_app(fixed_state)
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.press("4")
        await settle(cast("Pilot[object]", pilot), loaded(app))
        url = f"file://{FIXED / 'vault'}"
        with open_store(parse_location(url)) as store:
            vault = VaultStore(store, "prod")
            slot = CLOCK - timedelta(hours=1)
            vault.claim_run(
                RunRecord(
                    "billing-db", slot, "BackupWeekly", RunTrigger.SCHEDULED,
                    RunState.SUCCEEDED, "db-1:42", "Default", "8",
                    slot.strftime("%Y%m%dT%H%M%S"), slot + timedelta(minutes=5),
                )
            )  # fmt: skip

        def billing_healthy() -> bool:
            screen = app.screen
            found = getattr(screen, "found", {})
            item = found.get("prod|billing-db")
            return item is not None and str(item.health) == "healthy"

        await settle(cast("Pilot[object]", pilot), billing_healthy)


def test_the_help_says_what_the_rpo_column_measures() -> None:
    """Seen in tmux: the RPO column read 10s, 20s, 30s minutes after the newest backup (WAL
    archived since counts, as status computes it) while the view's help said RPO was the age
    of the newest backup."""
    text = ProtectionScreen.HELP_TEXT
    assert "age of the newest backup)" not in text
    assert "the newest WAL archived after it" in text
