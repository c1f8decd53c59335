"""The restored global/pg_control, checked before it is put in place: intact, and ours.

Kept whole in one function so that core.postgres.control (pg_control by version) can
replace it in one move.
"""

from __future__ import annotations

import os
import struct

import google_crc32c

from core.backup_info import BackupInfo
from core.errors import IntegrityError
from core.restore.extract import PG_CONTROL_PENDING

PG_CONTROL_CRC_OFFSET = 288


def check_control(pgdata: str, info: BackupInfo) -> str:
    path = os.path.join(pgdata, PG_CONTROL_PENDING)
    try:
        with open(path, "rb") as fh:
            control = fh.read()
    except FileNotFoundError:
        raise IntegrityError(
            f"backup {info.backup_id} holds no global/pg_control: it is not restorable"
        ) from None
    if len(control) < PG_CONTROL_CRC_OFFSET + 4:
        raise IntegrityError("the restored global/pg_control is too short")
    stored = struct.unpack_from("<I", control, PG_CONTROL_CRC_OFFSET)[0]
    if google_crc32c.value(control[:PG_CONTROL_CRC_OFFSET]) != stored:
        raise IntegrityError("the restored global/pg_control has an invalid checksum")
    sysid = str(struct.unpack_from("<Q", control, 0)[0])
    if info.systemid and str(info.systemid) != sysid:
        raise IntegrityError(
            f"the restored global/pg_control belongs to system {sysid}, backup.info "
            f"says {info.systemid}"
        )
    return f"global/pg_control is intact (CRC) and belongs to system {sysid}"


__all__ = ["PG_CONTROL_CRC_OFFSET", "check_control"]
