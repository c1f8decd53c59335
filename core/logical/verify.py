"""verify of a logical backup: every stored object read back and checked against
logical.json (stored size; pg_dump's SHA-256, after age has authenticated an encrypted one).

    check_logical(store, server, backup_id, reporter, jobs) -> LogicalCheck

The manifest itself must load (an encrypted one needs the key). Problems are collected,
one per object, for core.verify to report all at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from core.crypto import DecryptingReader, Identity
from core.encryption import unlocked_keys
from core.errors import DecryptionFailed, ObjectNotFound, StorageError
from core.logical import integrity
from core.logical.catalog import get_logical
from core.logical.layout import LogicalLayout
from core.logical.manifest import DumpFile
from core.progress import Reporter
from core.storage import ObjectReader, ObjectStore


@dataclass
class LogicalCheck:
    backup_id: str
    objects: int = 0
    bytes_read: int = 0
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)


def check_logical(
    store: ObjectStore, server: str, backup_id: str, reporter: Reporter, jobs: int
) -> LogicalCheck:
    """Read every object of logical backup `backup_id`; what was found wrong, per object."""
    manifest = get_logical(store, server, backup_id)
    layout = LogicalLayout(server)
    identities = unlocked_keys(store, server).identities if manifest.encrypted else None
    items = [
        (layout.dump_file(backup_id, db.name, f.name), f)
        for db in manifest.databases
        for f in db.files
    ]
    result = LogicalCheck(backup_id, objects=1)
    reporter.phase("verify")
    reporter.set_totals(bytes_total=sum(f.size for _, f in items), files_total=len(items))
    with ThreadPoolExecutor(jobs, thread_name_prefix="pgvault-verify") as pool:
        for problem, read in pool.map(lambda item: _object(store, item, identities), items):
            result.objects += 1
            result.bytes_read += read
            reporter.advance(files=1)
            if problem is not None:
                result.problems.append(problem)
                reporter.log(problem, logging.ERROR)
    if manifest.globals_file is not None:
        result.objects += 1
        key = layout.globals_sql(backup_id)
        problem, read = _object(store, (key, None), identities)
        result.bytes_read += read
        if problem is not None:
            result.problems.append(problem)
    result.checked.append(
        f"{len(items)} dump files of {len(manifest.databases)} database(s): stored size"
        + (", SHA-256" if all(f.sha256 for _, f in items) else "")
        + (" and age authentication" if manifest.encrypted else "")
    )
    if not all(f.sha256 for _, f in items):
        result.not_checked.append("file contents: this backup's manifest records no checksums")
    return result


def _object(
    store: ObjectStore,
    item: tuple[str, DumpFile | None],  # None: globals.sql, which records no size
    identities: Sequence[Identity] | None,
) -> tuple[str | None, int]:
    """(what is wrong with one stored object or None, bytes read)."""
    key, recorded = item
    try:
        stored = store.head(key).size
        if recorded is not None and stored != recorded.size:
            return f"{key}: {stored} bytes stored, {recorded.size} recorded", 0
        with store.open_reader(key) as raw:
            reader: ObjectReader | DecryptingReader = raw
            if identities is not None:
                reader = DecryptingReader(raw, identities, key)
            _, sha256 = integrity.copy_hashing(reader.read)
    except ObjectNotFound:
        return f"{key}: missing", 0
    except (DecryptionFailed, StorageError) as exc:
        return f"{key}: {exc}", 0
    if recorded is None:
        return None, stored
    return integrity.damaged(key, recorded, sha256), stored
