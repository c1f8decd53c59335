"""The plan phase: the files to copy, and (resuming) what a failed run already stored.

Each plan step takes a FilePlan and returns one: an incremental backup would be another
step here choosing what to copy, not a branch in the stream.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import replace

from core.backup.increment_plan import IncrementChooser
from core.backup.increment_resume import blocks_check, keep_maps
from core.backup.resume import FileChecks, plan_resume
from core.backup.state import BackupState, ExternalFile, FilePlan
from core.catalog.chains import INCREMENT_PREFIX
from core.postgres.connection import ServerFacts
from core.postgres.control import CONTROL_FILE_SIZE
from core.postgres.pgdata import scan_pgdata, scan_tablespace

log = logging.getLogger("pgvault.backup")


def plan_files(state: BackupState) -> FilePlan:
    """Walk the tablespaces and PGDATA (skipping the exclusion list); set progress totals."""
    state.enter("scanning files")
    facts = state.facts
    pgdata = facts.data_directory
    trees = tuple(scan_tablespace(t.location, t.oid, facts) for t in facts.tablespaces)
    data_tree = scan_pgdata(pgdata, facts)
    external = external_config(facts, pgdata)
    total = sum(t.size for t in [*trees, data_tree]) + CONTROL_FILE_SIZE
    for file in external:
        with contextlib.suppress(OSError):
            total += os.stat(file.path).st_size
    # pg_control and backup_label are added to the data archive besides the walked files.
    files = sum(t.files for t in [*trees, data_tree]) + 2 + len(external)
    state.job.reporter.set_totals(bytes_total=total, files_total=files)
    return FilePlan(trees, data_tree, external, total, files)


def keep_stored_parts(
    state: BackupState, plan: FilePlan, chooser: IncrementChooser | None = None
) -> FilePlan:
    """Keep what the failed run stored of files unchanged since; the rest is left to copy.
    An incremental (`chooser`) keeps its members of changed blocks that this run would store
    the same (core.backup.increment_resume)."""
    state.enter("checking what the failed backup stored")
    facts = state.facts
    prefix = INCREMENT_PREFIX if chooser else ""
    by_name = {
        prefix + str(t.oid): tree
        for t, tree in zip(facts.tablespaces, plan.tablespaces, strict=True)
    }
    by_name[prefix + "data"] = plan.data
    algorithm = state.job.algorithm
    checks = FileChecks(
        algorithm,
        state.checkpoint,
        blocks_check(chooser, algorithm, state.checkpoint) if chooser else None,
    )
    kept = plan_resume(state.stored, by_name, checks, state.log)
    if chooser is not None:
        blocks = kept.blocks
        keep_maps(chooser, blocks, kept.reused_paths - set(blocks))
    reporter = state.job.reporter
    reporter.detail("reused_bytes", kept.reused_bytes)
    reporter.detail("reused_stored_bytes", kept.reused_stored)
    state.log(
        f"resuming backup {state.backup_id}: {len(kept.archives)} stored parts kept "
        f"({len(kept.files)} files, {kept.reused_stored} bytes not sent again)"
    )
    # Progress counts this run's work: what the kept parts hold is not done again.
    remaining = replace(
        plan,
        tablespaces=tuple(
            kept.remaining(prefix + str(t.oid), tree)
            for t, tree in zip(facts.tablespaces, plan.tablespaces, strict=True)
        ),
        data=kept.remaining(prefix + "data", plan.data),
        bytes_total=plan.bytes_total - kept.reused_bytes,
        files_total=plan.files_total - len(kept.files),
        kept=kept,
    )
    reporter.set_totals(bytes_total=remaining.bytes_total, files_total=remaining.files_total)
    return remaining


def external_config(facts: ServerFacts, pgdata: str) -> tuple[ExternalFile, ...]:
    """Config files outside PGDATA, added to the data archive's root as barman-cloud does."""
    root = os.path.realpath(pgdata) + os.sep
    found = []
    for kind, path in (
        ("config_file", facts.config_file),
        ("hba_file", facts.hba_file),
        ("ident_file", facts.ident_file),
    ):
        if path and not os.path.realpath(path).startswith(root):
            found.append(ExternalFile(kind, path, optional=kind == "ident_file"))
    outside = [p for p in facts.included_files if not os.path.realpath(p).startswith(root)]
    if outside:
        log.warning(
            "configuration files included from outside PGDATA are not backed up; copy them "
            "yourself: %s",
            ", ".join(outside),
        )
    return tuple(found)
