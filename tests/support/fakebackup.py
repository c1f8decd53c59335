"""Backups written by hand into a local catalog, for what no real backup contains.

Hostile archives (escaping names, device files, links), catalogs of many backups with
chosen end times, LSNs and timelines. The archives are real tar streams (Python's tarfile,
PAX, as barman-cloud writes them) and backup.info is barman's format.
"""

from __future__ import annotations

import io
import os
import pwd
import struct
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import google_crc32c

from core.catalog.backup_info import DONE, BackupInfo, Tablespace, serialize
from core.catalog.layout import ServerLayout

SYSTEM_ID = 7710000000000000001


def pg_control(system_id: int = SYSTEM_ID) -> bytes:
    """An 8 KiB pg_control of PostgreSQL 15 with the system identifier and a valid CRC (288)."""
    head = bytearray(288)
    struct.pack_into("<QII", head, 0, system_id, 1300, 202209061)
    crc = google_crc32c.value(bytes(head))
    return bytes(head) + struct.pack("<I", crc) + bytes(8192 - 292)


def _owner() -> tuple[int, int, str, str]:
    try:
        pw = pwd.getpwnam("postgres")
        return pw.pw_uid, pw.pw_gid, "postgres", "postgres"
    except KeyError:
        return os.getuid(), os.getgid(), "", ""


@dataclass
class Member:
    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    mode: int = 0o600
    linkname: str = ""


def minimal_pgdata() -> list[Member]:
    """Just enough of a data directory for a restore to accept it."""
    return [
        Member(".", type=tarfile.DIRTYPE, mode=0o700),
        Member("PG_VERSION", b"15\n"),
        Member("global", type=tarfile.DIRTYPE, mode=0o700),
        Member("pg_wal", type=tarfile.DIRTYPE, mode=0o700),
        Member("postgresql.conf", b"# restored\n"),
        Member("global/pg_control", pg_control()),
    ]


def tar_bytes(members: Sequence[Member]) -> bytes:
    uid, gid, uname, gname = _owner()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type = m.type
            info.mode = m.mode
            info.uid, info.gid, info.uname, info.gname = uid, gid, uname, gname
            info.mtime = 1_700_000_000
            info.linkname = m.linkname
            if m.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
                info.size = len(m.data)
                tar.addfile(info, io.BytesIO(m.data))
            else:
                tar.addfile(info)
    return buffer.getvalue()


@dataclass
class FakeBackup:
    backup_id: str
    status: str = DONE
    end_time: datetime | None = None
    end_xlog: str = "0/3000100"
    timeline: int = 1
    name: str | None = None
    members: list[Member] = field(default_factory=minimal_pgdata)
    archives: dict[str, bytes] | None = None  # file name -> raw bytes (default: data.tar)
    tablespaces: tuple[Tablespace, ...] | None = None

    def write(self, root: str, server: str) -> None:
        layout = ServerLayout(server)
        directory = os.path.join(root, layout.backup_prefix(self.backup_id))
        os.makedirs(directory, exist_ok=True)
        begin = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
        info = BackupInfo(
            backup_id=self.backup_id,
            status=self.status,
            backup_name=self.name,
            server_name=server,
            systemid=str(SYSTEM_ID),
            version=150000,
            timeline=self.timeline,
            begin_time=begin,
            begin_xlog="0/2000028",
            begin_wal=f"{self.timeline:08X}0000000000000002",
            end_time=self.end_time or begin,
            end_xlog=self.end_xlog,
            end_wal=f"{self.timeline:08X}0000000000000003",
            tablespaces=self.tablespaces,
        )
        with open(os.path.join(directory, "backup.info"), "wb") as fh:
            fh.write(serialize(info))
        archives = (
            self.archives if self.archives is not None else {"data.tar": tar_bytes(self.members)}
        )
        for filename, raw in archives.items():
            with open(os.path.join(directory, filename), "wb") as fh:
                fh.write(raw)
