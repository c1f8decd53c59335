"""Catalogs for the catalog-command tests: real backups of a server whose WAL pgvault archives,
and synthetic backup.info/WAL objects for the rules real clusters cannot reach quickly."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field

from core.catalog.backup_info import DONE, BackupInfo, serialize
from core.catalog.layout import ServerLayout
from core.catalog.reader import Catalog
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster
from tests.support.wal import archive_command, archived_names, switch_segments

SERVER = "pg1"


@dataclass
class ArchivedServer:
    """A cluster archiving its WAL with pgvault into a destination, and its backups there."""

    cluster: Cluster
    dest: TestDestination
    backups: list[str] = field(default_factory=list)

    def backup(self, *flags: str) -> str:
        result = pgvault(
            "backup",
            "--immediate-checkpoint",
            *flags,
            *self.cluster.conninfo_args(),
            *self.dest.cli_args,
            self.dest.url,
            SERVER,
            env=self.dest.env,
        )
        assert result.returncode == 0, result.stderr
        backup_id = result.stdout.strip()
        self.backups.append(backup_id)
        return backup_id

    def write_wal(self, segments: int = 2) -> list[str]:
        """Fill and switch some segments, and wait until the last one is archived."""
        names = switch_segments(self.cluster, segments, rows=2000)
        self.cluster.wait_archived(names[-1])
        return names

    def run(
        self, command: str, *args: str, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """`pgvault --batch COMMAND [dest flags] URL pg1 ARGS...`."""
        return pgvault(
            command,
            *self.dest.cli_args,
            self.dest.url,
            SERVER,
            *args,
            env=self.dest.env,
            timeout=timeout,
        )

    def info(self, backup_id: str) -> BackupInfo:
        with self.dest.store() as store:
            return Catalog(store, SERVER).get(backup_id)


def archived_server(
    cluster_factory: object, dest: TestDestination, pgvault_bin: str, *flags: str
) -> ArchivedServer:
    cluster = cluster_factory(  # type: ignore[operator]
        archive_command=archive_command(pgvault_bin, dest.url, *dest.cli_args, *flags),
        env=dest.env,
        settings={"wal_keep_size": "1GB"},
    )
    server = ArchivedServer(cluster, dest)
    # postgres archives first, so it creates the WAL directories of a file:// destination
    # (root's backups can write into postgres's directories, not the other way round).
    server.write_wal(1)
    return server


def object_keys(dest: TestDestination, prefix: str = "") -> set[str]:
    with dest.store() as store:
        return {o.key for o in store.list_objects(prefix)}


def wal_names(dest: TestDestination, server: str = SERVER) -> set[str]:
    with dest.store() as store:
        return set(archived_names(store, server))


def put_backup(
    dest: TestDestination,
    backup_id: str,
    status: str = DONE,
    begin: str | None = None,
    end: str | None = None,
    server: str = SERVER,
    archive: bool = True,
) -> None:
    """A synthetic backup: backup.info and (for the deletion to have something) data.tar."""
    layout = ServerLayout(server)
    info = BackupInfo(
        backup_id=backup_id,
        status=status,
        begin_wal=begin,
        end_wal=end,
        timeline=int(begin[:8], 16) if begin else None,
        end_time=None,
        xlog_segment_size=16 * 1024 * 1024,
    )
    with dest.store() as store:
        store.put_bytes(layout.backup_info(backup_id), serialize(info))
        if archive:
            store.put_bytes(layout.backup_file(backup_id, "data.tar"), b"\0" * 1024)


def put_wal(dest: TestDestination, names: list[str], server: str = SERVER) -> None:
    """Synthetic WAL objects (deletion only ever reads their names)."""
    layout = ServerLayout(server)
    with dest.store() as store:
        for name in names:
            store.put_bytes(layout.wal(name), b"wal " + name.encode())


def json_out(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


def flip_byte(dest: TestDestination, key: str, offset: int | None = None) -> bytes:
    """Flip one byte of a stored object (the middle one by default); returns the original."""
    with dest.store() as store:
        original = store.get_bytes(key)
        changed = bytearray(original)
        changed[len(changed) // 2 if offset is None else offset] ^= 0x40
        store.put_bytes(key, bytes(changed))
    return original


def put_object(dest: TestDestination, key: str, data: bytes) -> None:
    with dest.store() as store:
        store.put_bytes(key, data)


def take_object(dest: TestDestination, key: str) -> bytes:
    """Delete a stored object; returns its bytes (to put it back)."""
    with dest.store() as store:
        data = store.get_bytes(key)
        store.delete_many([key])
    return data


def wal_key(dest: TestDestination, name: str, server: str = SERVER) -> str:
    """The key of an archived WAL file, whatever its compression suffix."""
    layout = ServerLayout(server)
    with dest.store() as store:
        for obj in store.list_objects(layout.wals_prefix):
            parsed = layout.parse_wal(obj.key)
            if parsed is not None and parsed[0] == name:
                return obj.key
    raise AssertionError(f"{name} is not archived")


def archive_keys(dest: TestDestination, backup_id: str, server: str = SERVER) -> list[str]:
    """The data archive parts of a backup, in part order."""
    with dest.store() as store:
        info = Catalog(store, server).get(backup_id)
        sets = Catalog(store, server).archives(info)
    return [p.key for p in sets[0].parts]
