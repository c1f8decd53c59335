"""`backup.info`: barman's key=value metadata file, read and written byte-compatibly.

Only fields barman knows are written (barman refuses a backup.info with unknown fields);
pgvault's own metadata lives in `pgvault.json` next to it. Unknown fields found in files
written by newer barman versions are kept and written back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from core.errors import InputError, StorageError
from core.names import shown
from core.pyliteral import literal

STARTED = "STARTED"
DONE = "DONE"
FAILED = "FAILED"
EMPTY = "EMPTY"
#: the error of a backup whose deletion has begun: FAILED first, so that neither pgvault nor
#: barman-cloud reads a half-deleted backup as DONE (barman refuses unknown statuses/fields)
DELETING_ERROR = "failure deleting (backup-delete is removing this backup)"

_INT_FIELDS = {
    "version",
    "timeline",
    "begin_offset",
    "end_offset",
    "size",
    "deduplicated_size",
    "cluster_size",
    "xlog_segment_size",
}
_LITERAL_FIELDS = {"backup_label", "copy_stats", "included_files"}
_TIME_FIELDS = {"begin_time", "end_time"}
_HIDE_IF_NULL = {"backup_name", "snapshots_info"}


@dataclass(frozen=True)
class Tablespace:
    name: str
    oid: int
    location: str


@dataclass(frozen=True)
class BackupInfo:
    """The fields of barman-cloud's backup.info (3.19/3.20), plus its backup ID."""

    backup_id: str
    status: str = EMPTY
    backup_label: str | None = None
    backup_name: str | None = None
    begin_offset: int | None = None
    begin_time: datetime | None = None
    begin_wal: str | None = None
    begin_xlog: str | None = None
    children_backup_ids: str | None = None
    cluster_size: int | None = None
    compression: str | None = None
    config_file: str | None = None
    copy_stats: dict[str, Any] | None = None
    data_checksums: str | None = None
    deduplicated_size: int | None = None
    encryption: str | None = None
    end_offset: int | None = None
    end_time: datetime | None = None
    end_wal: str | None = None
    end_xlog: str | None = None
    error: str | None = None
    hba_file: str | None = None
    ident_file: str | None = None
    included_files: list[str] | None = None
    mode: str | None = None
    parent_backup_id: str | None = None
    pgdata: str | None = None
    server_name: str | None = None
    size: int | None = None
    snapshots_info: str | None = None
    summarize_wal: str | None = None
    systemid: str | None = None
    tablespaces: tuple[Tablespace, ...] | None = None
    timeline: int | None = None
    version: int | None = None
    xlog_segment_size: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def with_changes(self, **changes: Any) -> BackupInfo:
        return replace(self, **changes)

    @property
    def is_done(self) -> bool:
        return self.status == DONE

    @property
    def deleting(self) -> bool:
        """Its deletion has begun (and may have been interrupted): never restorable again."""
        return self.status == FAILED and self.error == DELETING_ERROR


def _dump(name: str, value: Any) -> str:
    if value is None:
        return "None"
    if name == "tablespaces":
        return repr([(t.name, t.oid, t.location) for t in value])
    if name in _LITERAL_FIELDS:
        return repr(value)
    return str(value)


def _load(name: str, raw: str) -> Any:
    if raw == "None":
        return None
    if name in _INT_FIELDS:
        return int(raw)
    if name in _TIME_FIELDS:
        return datetime.fromisoformat(raw)
    if name == "tablespaces":
        items = literal(raw)
        return tuple(Tablespace(str(n), int(o), str(loc)) for n, o, loc in items)
    if name in _LITERAL_FIELDS:
        return literal(raw)
    return raw


def serialize(info: BackupInfo) -> bytes:
    """key=value lines in alphabetical order, as barman writes them."""
    values: dict[str, Any] = {}
    for f in fields(info):
        if f.name in ("backup_id", "extra"):
            continue
        value = getattr(info, f.name)
        if value is None and f.name in _HIDE_IF_NULL:
            continue
        values[f.name] = _dump(f.name, value)
    values.update(info.extra)
    for key, text in values.items():
        _check_one_line(key, text)
    return "".join(f"{key}={values[key]}\n" for key in sorted(values)).encode("utf-8")


def _check_one_line(key: str, text: str) -> None:
    """The last guard against a value that would start a line of its own (an injection)."""
    if "".join(text.splitlines()) != text:
        raise InputError(f"backup.info: the {key} {shown(text)} would span more than one line")


def parse(backup_id: str, data: bytes) -> BackupInfo:
    """Parse a backup.info; a malformed file raises StorageError naming the backup."""
    known = {f.name for f in fields(BackupInfo)} - {"backup_id", "extra"}
    values: dict[str, Any] = {}
    extra: dict[str, str] = {}
    try:
        for line in data.decode("utf-8").splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            key, sep, raw = line.partition("=")
            if not sep:
                raise ValueError(f"invalid line {line!r}")
            key, raw = key.strip(), raw.strip()
            if key in known:
                values[key] = _load(key, raw)
            else:
                extra[key] = raw
    # A damaged file can make literal_eval or a field's conversion raise nearly anything.
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise StorageError(f"unreadable backup.info of backup {backup_id}: {exc}") from exc
    return BackupInfo(backup_id=backup_id, extra=extra, **values)
