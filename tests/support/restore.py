"""Getting a backup back for tests: barman-cloud's tools, or a plain extraction with pgvault's
own catalog and codecs (for what barman-cloud 3.19 cannot read: zstd, file:// destinations).

pgvault's restore command is a later issue; `extract_backup` is test support, the simplest
correct extraction (archives in part order, tablespace links rebuilt, an empty pg_wal),
exactly what barman-cloud-restore does.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.catalog.reader import Catalog
from core.codecs import Decompressor
from core.storage import ObjectStore
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster, as_postgres, chown_tree, start_restored, world_dir

BARMAN_ENV = "PGVAULT_BARMAN_BIN"


def barman_bin(name: str) -> str:
    """A barman-cloud executable from PGVAULT_BARMAN_BIN (set by the test command)."""
    directory = os.environ.get(BARMAN_ENV) or os.path.join(
        os.path.dirname(__file__), "..", "..", ".tools", "barman", "bin"
    )
    path = os.path.join(directory, name)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} not found: run ./scripts/test (it installs barman-cloud)")
    return path


def run_barman(
    tool: str, dest: TestDestination, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run barman-cloud-<tool> against a test destination (emulator endpoint and env)."""
    env = {**os.environ, **dest.env}
    provider = ["--cloud-provider", "google-cloud-storage"] if dest.provider == "gcs" else []
    cmd = [barman_bin(f"barman-cloud-{tool}"), *provider, *dest.cli_args, *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


class _StreamReader(io.RawIOBase):
    """Decompresses a stored archive on the fly for tarfile's stream mode."""

    def __init__(self, raw: io.RawIOBase, decompressor: Decompressor | None) -> None:
        self._raw = raw
        self._d = decompressor
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = self._raw.read(1 << 20)
            if not chunk:
                return 0
            self._buffer = self._d.decompress(chunk) if self._d else chunk
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def _extract(tar: tarfile.TarFile, destination: str) -> None:
    if hasattr(tarfile, "tar_filter"):  # Python >= 3.11.4: keep modes, owners and links
        tar.extractall(destination, filter="tar")
    else:
        tar.extractall(destination)  # noqa: S202 - the test's own backup, on older Pythons


def extract_backup(
    store: ObjectStore,
    server: str,
    backup_id: str,
    target: str,
    tablespace_locations: Mapping[str, str],
) -> dict[str, str]:
    """Extract every archive of a backup; returns {tablespace name: where it went}."""
    catalog = Catalog(store, server)
    info = catalog.resolve(backup_id)
    os.makedirs(target, exist_ok=True)
    placed: dict[str, str] = {}
    for archive_set in catalog.archives(info):
        destination = target
        if archive_set.tablespace is not None:
            destination = tablespace_locations[archive_set.tablespace.name]
            os.makedirs(destination, exist_ok=True)
            placed[archive_set.tablespace.name] = destination
        for part in archive_set.parts:
            codec = part.ref.codec
            with store.open_reader(part.key) as raw:
                stream = io.BufferedReader(
                    _StreamReader(raw, codec.decompressor() if codec else None), 1 << 20
                )
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    _extract(tar, destination)
    for tablespace in info.tablespaces or ():
        os.symlink(placed[tablespace.name], os.path.join(target, "pg_tblspc", str(tablespace.oid)))
    os.makedirs(os.path.join(target, "pg_wal"), exist_ok=True)
    return placed


@dataclass
class Restored:
    """A restored data directory and its relocated tablespaces (all under one base)."""

    base: str
    data: str
    tablespaces: dict[str, str]

    def drop(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


def restore_target(tablespace_names: Sequence[str]) -> Restored:
    base = world_dir("pgvault-restore-")
    return Restored(
        base=base,
        data=os.path.join(base, "data"),
        tablespaces={name: os.path.join(base, f"ts-{name}") for name in tablespace_names},
    )


def barman_restore(dest: TestDestination, server: str, backup_id: str, target: Restored) -> None:
    rules = [f"--tablespace={name}:{path}" for name, path in target.tablespaces.items()]
    run_barman("restore", dest, *rules, dest.url, server, backup_id, target.data)


def verify_with_pg_verifybackup(
    manifest: bytes, target: Restored, bindir: str, wal_dir: str | None = None
) -> subprocess.CompletedProcess[str]:
    """pg_verifybackup on a restored directory, with the stored backup_manifest."""
    path = os.path.join(target.base, "backup_manifest")
    with open(path, "wb") as fh:
        fh.write(manifest)
    args = ["-m", path]
    args += ["-w", wal_dir] if wal_dir else ["-n"]
    return subprocess.run(
        [f"{bindir}/pg_verifybackup", *args, target.data],
        capture_output=True,
        text=True,
        timeout=300,
    )


def start_recovered(target: Restored, bindir: str, archive_dir: str) -> Cluster:
    """Recover the restored directory to the backup's end from a WAL directory, then promote."""
    if os.geteuid() == 0:
        chown_tree(target.base)
    open(os.path.join(target.data, "recovery.signal"), "w").close()
    cluster = start_restored(
        target.data,
        bindir,
        settings={
            "restore_command": f"cp {archive_dir}/%f %p",
            "recovery_target": "immediate",
            "recovery_target_action": "promote",
        },
        tablespaces=target.tablespaces,
        wait=False,
    )
    cluster.start()
    return cluster


__all__ = [
    "Restored",
    "as_postgres",
    "barman_restore",
    "extract_backup",
    "restore_target",
    "run_barman",
    "start_recovered",
    "verify_with_pg_verifybackup",
]
