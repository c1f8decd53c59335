"""Resuming a failed incremental: the same parent, and the stored parts this run would store.

A resumed incremental builds on the parent the failed run recorded in its pgvault.json
(never a newer backup: its stored parts hold the changes since that parent). A kept part's
whole files are checked as a full backup's are (core.backup.resume); a member of changed
blocks is kept only when this run would store exactly those blocks of the file (the same
decision, read again now: summaries or page LSNs against the parent's start) with the same
bytes, so the file as restored is the one a fresh incremental would give.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from core.backup.blocks import from_runs
from core.backup.increment import ParentChoice, choose_parent
from core.backup.increment_plan import IncrementChooser
from core.backup.resume import BlocksCheck
from core.catalog.chains import FULL, INCREMENTAL
from core.catalog.manifest import FileRecord, new_checksum
from core.catalog.reader import Catalog
from core.errors import InputError, OperationFailed, PgvaultError
from core.postgres.pgdata import Tree
from core.storage import ObjectStore


def resumed_choice(store: ObjectStore, server: str, backup_id: str) -> ParentChoice | None:
    """The failed run's parent; None when it was (or fell back to) a full backup."""
    what = f"cannot resume backup {backup_id} of server {server}"
    try:
        manifest = Catalog(store, server).pgvault_manifest(backup_id)
    except PgvaultError as exc:
        raise OperationFailed(f"{what}: {exc}") from None
    record = (manifest.incremental if manifest else None) or {}
    kind = record.get("kind")
    if kind in (None, FULL):
        return None
    parent = str(record.get("parent"))
    try:
        choice = choose_parent(store, server, INCREMENTAL, parent)
    except InputError:
        raise OperationFailed(
            f"{what}: its parent {parent} is gone; take a new backup instead"
        ) from None
    if choice.parent is None:
        raise OperationFailed(f"{what}: {choice.fallback}; take a new backup instead")
    return replace(choice, requested=str(kind))


def blocks_check(
    chooser: IncrementChooser, algorithm: str, checkpoint: Callable[[], None]
) -> BlocksCheck:
    """The check core.backup.resume applies to a kept member of changed blocks."""

    def unchanged(record: FileRecord, stored_map: list[Any], tree: Tree) -> bool:
        if not record.path.startswith(tree.manifest_prefix):
            return False
        source = os.path.join(tree.root, record.path[len(tree.manifest_prefix) :])
        size = int(stored_map[1])
        stored = list(from_runs(stored_map[3]))
        try:
            fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            if os.fstat(fd).st_size != size or chooser.planned(record.path, fd, size) != stored:
                return False
            checksum = new_checksum(algorithm)
            block_size = chooser.block_size
            for number in stored:
                checkpoint()
                data = os.pread(fd, block_size, number * block_size)
                if len(data) != block_size:
                    return False
                checksum.update(data)
        except OSError:
            return False
        finally:
            os.close(fd)
        return len(stored) * block_size == record.size and checksum.hexdigest() == record.checksum

    return unchanged


def keep_maps(chooser: IncrementChooser, kept: dict[str, list[Any]], whole: set[str]) -> None:
    """The kept parts' files, as the block maps record them: not streamed again."""
    for path in whole:
        chooser.files.pop(path, None)  # stored whole in a kept part: no older block needed
    chooser.files.update(kept)


__all__ = ["blocks_check", "keep_maps", "resumed_choice"]
