"""`r` on a backup: restore it (or recover to a point in time) into a directory, as
`pgvault --batch restore --detach` does.

The request is built and validated by core (core.restore: the recovery target's rules, an
empty or new directory, or with Delta the stopped data directory of the backup's cluster);
the job runs in its own process and the form closes on the jobs
view, where it appears.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Vertical, VerticalScroll
from textual.validation import Validator
from textual.widgets import Checkbox, Input, Label, Static

from core.backup.request import parse_bandwidth, parse_port
from core.catalog.backup_info import DONE, BackupInfo
from core.catalog.chains import FULL
from core.catalog.layout import BACKUP_ID_RE
from core.catalog.reader import LAST_FAILED, LATEST, OLDEST
from core.errors import InputError
from core.restore import RestoreRequest, default_pgvault_command, make_target
from core.restore.job import RESTORE
from core.restore.plan import inside, missing_dir
from core.restore.targets import require_ended_before
from core.storage import StoreConfig
from core.urls import parse_location
from tui.adapter import BackupRef, describe_error
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


def _shortcut(reference: str) -> bool:
    return reference == "auto" or reference in (*LATEST, *OLDEST, LAST_FAILED)


def unlisted(ref: BackupRef, backup: str, listed: Sequence[BackupInfo] | None) -> bool:
    """True when the Backup field names an ID or a name the listing (None: none) lacks."""
    reference = backup.strip()
    if not reference or _shortcut(reference):
        return False
    if listed is None:
        return True
    by_id = BACKUP_ID_RE.match(reference) is not None
    return not any((b.backup_id if by_id else b.backup_name) == reference for b in listed)


def listed_backup(ref: BackupRef, backup: str, listed: Sequence[BackupInfo] | None) -> str:
    """The Backup field's reference, refused (InputError) when the catalog's listing of the
    server has no DONE backup by that ID or name: said in the form, not by a job that fails
    on it. The shortcuts (latest, oldest, auto ...) are core's to choose; None: not listed."""
    reference = backup.strip()
    if not reference:
        raise InputError("name the backup: an ID, a name, latest, or auto with a time")
    if listed is None or _shortcut(reference):
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


def _into(text: str) -> str:
    """The Into field, as far as it is cheap to check while typed (its contents: at Start)."""
    if not text.strip():
        raise InputError("give the directory to restore into (empty or new)")
    path = _path(text)
    if path == "/":
        raise InputError("the recovery directory cannot be /")
    missing_dir(path, "the recovery directory")
    return path


#: the form's text fields after Backup: (id, label, placeholder, its parser: empty is fine
#: but in Into); Point in time's placeholder is the backup's end
FIELDS: tuple[tuple[str, str, str, Callable[[str], object]], ...] = (
    ("directory", "Into", "an empty or new directory, e.g. /var/lib/pgsql/restored", _into),
    (
        "wal_restore_dir",
        "WAL dir",
        "restore_command's, outside Into (empty: INTO.pgvault)",
        _path,
    ),
    ("port", "Port", "the restored server's (empty: the source's)", parse_port),
    (
        "bandwidth",
        "Bandwidth cap",
        "on downloads, bytes/s, e.g. 20MB (empty: no limit)",
        parse_bandwidth,
    ),
    ("tablespaces", "Tablespaces", "", parse_relocations),
    ("time", "Point in time", "", lambda text: make_target(time=text.strip())),
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
    ERROR_FIELDS = {
        "name the backup": "backup",
        "the recovery directory": "directory",
        "give the directory": "directory",
        "restore_command's": "wal_restore_dir",
        "--wal-restore-dir": "wal_restore_dir",
        "--port": "port",
        "--max-bandwidth": "bandwidth",
        "tablespace": "tablespaces",
        "--target-time": "time",
        "target time": "time",
        "recovery target": "time",
    }

    REQUIRED = frozenset({"backup", "directory"})

    def __init__(
        self,
        ref: BackupRef,
        state_dir: str | None,
        keys: JobKeys | None = None,
        listed: Sequence[BackupInfo] | None = None,
        relist: Callable[[], Sequence[BackupInfo]] | None = None,
    ) -> None:
        super().__init__(state_dir, keys)
        self.ref = ref
        #: the server's backups as the catalog lists them (None: the Backup field unchecked)
        self.listed = tuple(listed) if listed is not None else None
        #: lists the server again (blocks: run off the UI thread), once, for a Backup the
        #: listing lacks (a backup taken since) or when there is no listing
        self.relist = relist
        self.relisted = False

    def _validators(self, field_id: str, parse: Callable[[str], object]) -> list[Validator]:
        if field_id == "wal_restore_dir":
            return [Parsed(self._wal_dir, optional=True)]
        return [Parsed(parse, optional=field_id not in self.REQUIRED)]

    def _wal_dir(self, text: str) -> str:
        """restore_command's directory, outside Into (a cheap check of core's rule)."""
        path, into = _path(text), self.value("directory")
        if into.strip() and (inside(path, _path(into)) or inside(_path(into), path)):
            raise InputError(
                f"restore_command's directory {path} must be outside Into ({_path(into)}): "
                "whatever is inside would be copied into every later backup"
            )
        return path

    def _placeholder(self, field_id: str, default: str) -> str:
        if field_id == "tablespaces":
            names = [t.name for t in self.ref.info.tablespaces or ()]
            return " ".join(f"{name}:DIR" for name in names) + " (empty: where they were)"
        if field_id == "time":
            return _time_placeholder(self.ref.info.end_time)
        return default

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="form"):
            yield Label(f"Restore from {self.ref.server}", id="dialog-title")
            with VerticalScroll(id="form-body"), Grid(id="form-grid"):
                yield Label("Backup", classes="form-label")
                yield from self.checked_field(
                    "backup",
                    [Parsed(lambda text: listed_backup(self.ref, text, self.listed))],
                    value=self.ref.info.backup_id,
                    placeholder="an ID, a name, latest, or auto (with a time)",
                )
                for field_id, label, placeholder, parse in FIELDS:
                    if field_id == "tablespaces" and not self.ref.info.tablespaces:
                        continue
                    yield Label(label, classes="form-label")
                    yield from self.checked_field(
                        field_id,
                        self._validators(field_id, parse),
                        placeholder=self._placeholder(field_id, placeholder),
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

    # ---- the Backup field against a fresh listing -------------------------------------------

    def action_submit(self) -> None:
        """A Backup the listing lacks (or with no listing) is looked for in the server's
        catalog once, off the UI thread, before the form refuses it (or says it is not
        checked); then the form's checks and start as every job form's."""
        if self.starting:
            return
        if (
            self.relist is not None
            and not self.relisted
            and unlisted(self.ref, self.value("backup"), self.listed)
        ):
            self.relisted = True
            self.starting = True  # nothing more is taken meanwhile
            self.query_one("#form-status", Static).update(
                Text(f"listing server {self.ref.server} again ...", style="bold")
            )
            self.run_worker(self._list_again, thread=True, exit_on_error=False, group="relist")
            return
        super().action_submit()

    def _list_again(self) -> None:
        relist = self.relist
        if relist is None:
            return
        try:
            listed: Sequence[BackupInfo] | None = relist()
            error = ""
        except Exception as exc:  # said under Backup: the check could not be made
            listed, error = None, describe_error(exc)
        self.app.call_from_thread(self._listed_again, listed, error)

    def _listed_again(self, listed: Sequence[BackupInfo] | None, error: str) -> None:
        self.starting = False
        self.query_one("#form-status", Static).update("")
        if listed is not None:
            self.listed = tuple(listed)
            self.action_submit()
            return
        if self.listed is not None:
            self.action_submit()  # refused by the listing it has (it lists no such backup)
            return
        # No listing at all: said once, under Backup; Start again restores it unchecked.
        label = self.query_one("#backup-error", Label)
        label.update(
            Text(
                f"not checked: server {self.ref.server} could not be listed ({error}); "
                "Start again to restore it unchecked"
            )
        )
        label.display = True
        self.query_one("#backup", Input).focus()

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
