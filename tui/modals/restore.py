"""`r` on a backup: restore it (or recover to a point in time) into a directory, as
`pgvault --batch restore --detach` does.

The request is built and validated by core (core.restore: the recovery target's rules, an
empty or new directory, or with Delta the stopped data directory of the backup's cluster);
the job runs in its own process and the form closes on the jobs
view, where it appears.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Checkbox, Input, Label

from core.backup.request import parse_bandwidth, parse_port
from core.catalog.backup_info import DONE, BackupInfo
from core.catalog.chains import FULL
from core.catalog.layout import BACKUP_ID_RE
from core.catalog.reader import LAST_FAILED, LATEST, OLDEST
from core.errors import InputError
from core.restore import RestoreRequest, default_pgvault_command, make_target
from core.restore.job import RESTORE
from core.restore.targets import require_ended_before
from core.storage import StoreConfig
from core.urls import parse_location
from tui.adapter import BackupRef
from tui.config import RESTORE_JOBS
from tui.modals.job_form import JobFormScreen, JobKeys, Parsed


def _path(text: str) -> str:
    # Absolute: the job runs in another process, from another directory.
    return os.path.abspath(os.path.expanduser(text.strip()))


def parse_relocations(text: str) -> tuple[tuple[str, str], ...]:
    """`NAME:DIR NAME:DIR`: where each tablespace goes (restore's --tablespace rules)."""
    rules = []
    for word in text.split():
        name, sep, location = word.partition(":")
        if not sep or not name or not location:
            raise InputError(f"invalid tablespace rule {word!r}: the syntax is NAME:DIR")
        rules.append((name, _path(location)))
    return tuple(rules)


def build_restore_request(
    ref: BackupRef,
    backup: str,
    directory: str,
    time: str = "",
    immediate: bool = False,
    tablespaces: str = "",
) -> RestoreRequest:
    """The request the form describes (raises PgvaultError on bad input)."""
    if not backup.strip():
        raise InputError("name the backup: an ID, a name, latest, or auto with a time")
    if not directory.strip():
        raise InputError("give the directory to restore into (empty or new)")
    target = make_target(time=time.strip() or None, immediate=immediate)
    if backup.strip() == ref.info.backup_id:  # said here, before a job that would fail on it
        require_ended_before(ref.info, target)
    return RestoreRequest(
        location=parse_location(ref.url),
        server=ref.server,
        backup=backup.strip(),
        recovery_dir=_path(directory),
        store_config=StoreConfig(jobs=RESTORE_JOBS),
        tablespaces=parse_relocations(tablespaces),
        target=target,
        pgvault_command=default_pgvault_command(),
    )


def listed_backup(ref: BackupRef, backup: str, listed: Sequence[BackupInfo] | None) -> str:
    """The Backup field's reference, refused (InputError) when the catalog's listing of the
    server has no DONE backup by that ID or name: said in the form, not by a job that fails
    on it. The shortcuts (latest, oldest, auto ...) are core's to choose; None: not listed."""
    reference = backup.strip()
    if not reference:
        raise InputError("name the backup: an ID, a name, latest, or auto with a time")
    shortcut = reference == "auto" or reference in (*LATEST, *OLDEST, LAST_FAILED)
    if listed is None or shortcut:
        return reference
    by_id = BACKUP_ID_RE.match(reference) is not None
    found = [b for b in listed if (b.backup_id if by_id else b.backup_name) == reference]
    where = f"server {ref.server} in {ref.label}"
    if not found:
        raise InputError(
            f"no backup {reference!r} of {where}: an ID or a name the catalog lists, latest, "
            "or auto with a Point in time"
        )
    if len(found) > 1:
        ids = ", ".join(b.backup_id for b in found)
        raise InputError(f"several backups of {where} are named {reference!r}: {ids}")
    if found[0].status != DONE:
        raise InputError(f"backup {found[0].backup_id} is {found[0].status}, not DONE")
    return reference


#: the form's text fields after Backup: (id, label, placeholder)
FIELDS = (
    ("directory", "Into", "an empty or new directory, e.g. /var/lib/pgsql/restored"),
    ("wal_restore_dir", "WAL dir", "restore_command's, outside Into (empty: INTO.pgvault)"),
    ("port", "Port", "the restored server's (empty: the source's)"),
    ("bandwidth", "Bandwidth cap", "on downloads, bytes/s, e.g. 20MB (empty: no limit)"),
)


def _time_placeholder(end: datetime | None) -> str:
    """An example target the operator can edit: this backup's end, the earliest it reaches."""
    example = end.isoformat(sep=" ", timespec="seconds") if end else "2026-11-21 10:15:00+00:00"
    return f"(empty: all archived WAL) e.g. {example}"


class RestoreScreen(JobFormScreen):
    """Dismissed with the restore job's id, or None when abandoned."""

    kind = RESTORE
    what = "restore"
    OPTION_FIELDS = {
        "--wal-restore-dir": "WAL dir",
        "--port": "Port",
        "--max-bandwidth": "Bandwidth cap",
        "--tablespace": "Tablespaces",
        "--target-time": "Point in time",
        "--target-immediate": "Stop",
        "--delta": "Delta",
    }

    REQUIRED = frozenset({"backup"})

    def __init__(
        self,
        ref: BackupRef,
        state_dir: str | None,
        keys: JobKeys | None = None,
        listed: Sequence[BackupInfo] | None = None,
    ) -> None:
        super().__init__(state_dir, keys)
        self.ref = ref
        #: the server's backups as the catalog lists them (None: the Backup field unchecked)
        self.listed = tuple(listed) if listed is not None else None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="form"):
            yield Label(f"Restore from {self.ref.server}", id="dialog-title")
            with Grid(id="form-grid"):
                yield Label("Backup", classes="form-label")
                yield from self.checked_field(
                    "backup",
                    [Parsed(lambda text: listed_backup(self.ref, text, self.listed))],
                    value=self.ref.info.backup_id,
                    placeholder="an ID, a name, latest, or auto (with a time)",
                )
                for field_id, label, placeholder in FIELDS:
                    yield Label(label, classes="form-label")
                    yield Input(placeholder=placeholder, id=field_id, compact=True)
                names = [t.name for t in self.ref.info.tablespaces or ()]
                if names:
                    yield Label("Tablespaces", classes="form-label")
                    yield Input(
                        placeholder=" ".join(f"{name}:DIR" for name in names)
                        + " (empty: where they were)",
                        id="tablespaces",
                        compact=True,
                    )
                yield Label("Point in time", classes="form-label")
                yield Input(
                    placeholder=_time_placeholder(self.ref.info.end_time),
                    id="time",
                    compact=True,
                )
                yield Label("Stop", classes="form-label")
                yield Checkbox(
                    "at the end of the backup (no WAL replayed after it)", id="immediate"
                )
                yield Label("Delta", classes="form-label")
                yield Checkbox(
                    "over this cluster's stopped PGDATA (--delta)",
                    id="delta",
                )
            yield from self.form_footer(
                "Start restore",
                f"from {self.ref.label}; the copy never archives into this archive; "
                "start it with pg_ctl when the job is done",
            )

    def on_mount(self) -> None:
        self.focus_first(self.query_one("#directory", Input))

    def value(self, field_id: str) -> str:
        return self.query_one(f"#{field_id}", Input).value

    def build_request(self) -> RestoreRequest:
        relocations = self.query("#tablespaces")
        request = build_restore_request(
            self.ref,
            self.value("backup"),
            self.value("directory"),
            self.value("time"),
            self.query_one("#immediate", Checkbox).value,
            self.value("tablespaces") if relocations else "",
        )
        delta = self.query_one("#delta", Checkbox).value
        if delta and request.backup == self.ref.info.backup_id and self.ref.kind != FULL:
            # Said here, from the listing, rather than by a job that fails on it at once.
            raise InputError(
                f"backup {request.backup} is an incremental: --delta restores for full "
                "backups only; restore it into an empty or new directory"
            )
        port = self.value("port").strip()
        wal_dir = self.value("wal_restore_dir").strip()
        return replace(
            request,
            wal_restore_dir=_path(wal_dir) if wal_dir else None,
            delta=delta,
            port=int(parse_port(port)) if port else None,
            store_config=replace(
                request.store_config,
                max_download_bandwidth=parse_bandwidth(self.value("bandwidth")),
            ),
        )
