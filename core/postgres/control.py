"""global/pg_control, read by its version: the one place that knows ControlFileData's layout.

`pg_control_version` (u32 at offset 8, the same in every release) selects the layout. The
fields pgvault reads sit at the same offsets from PostgreSQL 13 to 18 (17's CheckPoint
`wal_level` fills former padding); what moved is the CRC: 18 added `default_char_signedness`
before the 32-byte mock authentication nonce, so the CRC went from 288 to 292. The CRC is
CRC-32C over every byte before it, stored little-endian. Each layout was checked against the
pg_control of a cluster made by initdb of that major (13.23, 14.23, 15, 16.14, 17.10, 18.6).
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass, field
from enum import IntEnum

import google_crc32c

from core.errors import IntegrityError, OperationFailed

PG_CONTROL = "global/pg_control"
VERSION_OFFSET = 8
SYSTEM_ID_SIZE = 8
#: PG_CONTROL_FILE_SIZE: the file is always this long, whatever the struct's size
CONTROL_FILE_SIZE = 8192
# Above the newest known version but below this: a newer PostgreSQL (versions go 1300, 1700,
# 1800...); anything larger is not a version at all.
PLAUSIBLE_VERSION_LIMIT = 10_000
TORN_READ_ATTEMPTS = 20

# The catalog version each major was released with: it tells apart the majors that share a
# pg_control layout (13 to 16 all write pg_control_version 1300).
RELEASE_CATALOG_VERSIONS = {
    13: 202007201,
    14: 202107181,
    15: 202209061,
    16: 202307071,
    17: 202406281,
    18: 202506291,
}
OLDEST_MAJOR = min(RELEASE_CATALOG_VERSIONS)
NEWEST_MAJOR = max(RELEASE_CATALOG_VERSIONS)


@dataclass(frozen=True)
class ControlLayout:
    """One pg_control format: the majors that write it and where its CRC is."""

    pg_control_version: int
    majors: tuple[int, ...]
    crc_offset: int


LAYOUTS = {
    1300: ControlLayout(1300, (13, 14, 15, 16), 288),
    1700: ControlLayout(1700, (17,), 288),
    1800: ControlLayout(1800, (18,), 292),
}

# Field offsets shared by every known layout (little-endian, 64-bit build).
_HEAD = struct.Struct("<QIIIxxxxqQQII?")  # sysid, version, catalog, state, time, ckpt, redo, tli
_RECOVERY = struct.Struct("<QIxxxxQQ?xxxi?")  # minRecoveryPoint .. wal_level, wal_log_hints
_SIZES = struct.Struct("<IIII")  # blcksz, relseg_size, xlog_blcksz, xlog_seg_size
_RECOVERY_OFFSET = 136
_SIZES_OFFSET = 216
_CHECKSUM_VERSION_OFFSET = 252


class DBState(IntEnum):
    """ControlFileData.state."""

    STARTUP = 0
    SHUT_DOWN = 1
    SHUT_DOWN_IN_RECOVERY = 2
    SHUTTING_DOWN = 3
    IN_CRASH_RECOVERY = 4
    IN_ARCHIVE_RECOVERY = 5
    IN_PRODUCTION = 6


class ControlFileDamaged(IntegrityError):
    """The bytes are not a sound pg_control of a layout pgvault knows (short, or a bad CRC)."""


class ControlFileTooShort(ControlFileDamaged):
    """Fewer bytes than the layout's CRC needs."""


class UnsupportedControlFile(OperationFailed):
    """A pg_control_version pgvault does not read: a newer (or too old) PostgreSQL wrote it."""


@dataclass(frozen=True)
class ControlFile:
    """What pgvault uses from pg_control, and the bytes it came from."""

    system_identifier: int
    pg_control_version: int
    catalog_version: int
    major: int
    state: DBState
    time: int
    checkpoint_lsn: int
    redo_lsn: int
    timeline: int
    prev_timeline: int
    full_page_writes: bool
    min_recovery_point: int
    min_recovery_timeline: int
    backup_start_lsn: int
    backup_end_lsn: int
    backup_end_required: bool
    wal_level: int
    wal_log_hints: bool
    block_size: int
    relseg_size: int
    wal_block_size: int
    wal_segment_size: int
    data_checksum_version: int
    raw: bytes = field(repr=False)

    @property
    def data_checksums(self) -> bool:
        return self.data_checksum_version != 0


def layout_of(data: bytes) -> ControlLayout:
    """The layout `data` declares; refuses a version pgvault does not know, naming it."""
    if len(data) < VERSION_OFFSET + 4:
        raise ControlFileTooShort(f"{PG_CONTROL} is too short ({len(data)} bytes)")
    version = struct.unpack_from("<I", data, VERSION_OFFSET)[0]
    layout = LAYOUTS.get(version)
    if layout is not None:
        return layout
    known = ", ".join(str(v) for v in LAYOUTS)
    span = f"PostgreSQL {OLDEST_MAJOR} to {NEWEST_MAJOR} (pg_control_version {known})"
    if max(LAYOUTS) < version < PLAUSIBLE_VERSION_LIMIT:
        raise UnsupportedControlFile(
            f"{PG_CONTROL} has pg_control_version {version}, newer than this pgvault knows: "
            f"it reads {span}; use a pgvault release that supports this PostgreSQL"
        )
    if 0 < version < min(LAYOUTS):
        raise UnsupportedControlFile(
            f"{PG_CONTROL} has pg_control_version {version}, from a PostgreSQL older than "
            f"{OLDEST_MAJOR}: pgvault reads {span}"
        )
    raise ControlFileDamaged(
        f"{PG_CONTROL} has no known pg_control_version ({version}): the control file is damaged"
    )


def crc_ok(data: bytes, layout: ControlLayout) -> bool:
    """Whether the CRC-32C stored at the layout's offset matches the bytes before it."""
    if len(data) < layout.crc_offset + 4:
        return False
    stored = struct.unpack_from("<I", data, layout.crc_offset)[0]
    return bool(google_crc32c.value(data[: layout.crc_offset]) == stored)


def major_of(layout: ControlLayout, catalog_version: int) -> int:
    """The major a layout and catalog version imply (the newest released at or below it)."""
    released = [m for m in layout.majors if RELEASE_CATALOG_VERSIONS[m] <= catalog_version]
    return max(released, default=layout.majors[0])


def parse_control(data: bytes) -> ControlFile:
    """A checked ControlFile from pg_control's bytes; ControlFileDamaged or unsupported."""
    layout = layout_of(data)
    if len(data) < layout.crc_offset + 4:
        raise ControlFileTooShort(f"{PG_CONTROL} is too short ({len(data)} bytes)")
    if not crc_ok(data, layout):
        raise ControlFileDamaged(f"{PG_CONTROL} has an invalid checksum")
    sysid, version, catalog, state, stamp, ckpt, redo, tli, prev_tli, fpw = _HEAD.unpack_from(data)
    min_lsn, min_tli, start, end, end_required, wal_level, hints = _RECOVERY.unpack_from(
        data, _RECOVERY_OFFSET
    )
    blcksz, relseg, wal_blcksz, segsz = _SIZES.unpack_from(data, _SIZES_OFFSET)
    return ControlFile(
        system_identifier=sysid,
        pg_control_version=version,
        catalog_version=catalog,
        major=major_of(layout, catalog),
        state=DBState(state) if state in DBState._value2member_map_ else DBState.STARTUP,
        time=stamp,
        checkpoint_lsn=ckpt,
        redo_lsn=redo,
        timeline=tli,
        prev_timeline=prev_tli,
        full_page_writes=fpw,
        min_recovery_point=min_lsn,
        min_recovery_timeline=min_tli,
        backup_start_lsn=start,
        backup_end_lsn=end,
        backup_end_required=end_required,
        wal_level=wal_level,
        wal_log_hints=hints,
        block_size=blcksz,
        relseg_size=relseg,
        wal_block_size=wal_blcksz,
        wal_segment_size=segsz,
        data_checksum_version=struct.unpack_from("<I", data, _CHECKSUM_VERSION_OFFSET)[0],
        raw=bytes(data),
    )


def read_control(pgdata: str) -> tuple[ControlFile, os.stat_result]:
    """A live cluster's pg_control and its stat (rewritten in place: a torn copy is re-read)."""
    path = os.path.join(pgdata, PG_CONTROL)
    for attempt in range(TORN_READ_ATTEMPTS):
        try:
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                data = fh.read()
        except OSError as exc:
            raise OperationFailed(f"cannot read {path}: {exc.strerror}") from None
        try:
            return parse_control(data), st
        except ControlFileDamaged:
            time.sleep(0.01 * (attempt + 1))
    raise OperationFailed(f"{path} has an invalid checksum: the control file is damaged")


def check_restored_control(path: str, backup_id: str, system_identifier: str) -> ControlFile:
    """The pg_control a restore extracted to `path`, sound and of the backup's system."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise IntegrityError(
            f"backup {backup_id} holds no global/pg_control: it is not restorable"
        ) from None
    try:
        control = parse_control(data)
    except ControlFileTooShort:
        raise IntegrityError("the restored global/pg_control is too short") from None
    except ControlFileDamaged:
        raise IntegrityError("the restored global/pg_control has an invalid checksum") from None
    sysid = str(control.system_identifier)
    if system_identifier and system_identifier != sysid:
        raise IntegrityError(
            f"the restored global/pg_control belongs to system {sysid}, backup.info "
            f"says {system_identifier}"
        )
    return control


def peek_system_identifier(pgdata: str) -> int | None:
    """The system identifier of the data directory `pgdata`, or None when it has none.

    Only the first 8 bytes (the same in every version), without the CRC: restore_command
    uses it to refuse another cluster's WAL, and any doubt means "no cluster to compare".
    """
    if not os.path.isfile(os.path.join(pgdata, "PG_VERSION")):
        return None
    try:
        with open(os.path.join(pgdata, PG_CONTROL), "rb") as fh:
            head = fh.read(SYSTEM_ID_SIZE)
    except OSError:
        return None
    if len(head) != SYSTEM_ID_SIZE:
        return None
    return int(struct.unpack("<Q", head)[0])


def peek_control(pgdata: str) -> ControlFile | None:
    """The pg_control of the data directory `pgdata`, or None when it has no sound one."""
    if not os.path.isfile(os.path.join(pgdata, "PG_VERSION")):
        return None
    try:
        with open(os.path.join(pgdata, PG_CONTROL), "rb") as fh:
            return parse_control(fh.read())
    except (OSError, ControlFileDamaged, UnsupportedControlFile):
        return None
