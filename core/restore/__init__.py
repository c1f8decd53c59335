"""Restore and point-in-time recovery (`pgvault --batch restore`), as phases over one state.

request    RestoreRequest in, RestoreResult out
plan       the request checked; the backup chosen, each archive set placed (nothing written)
state      RestoreRun: what every phase reads and adds to
cleanup    the directories created or adopted, and everything removed again on failure
ownership  the data directory's owner; restore_command checked as that user
delta      --delta: an existing directory checked, its matching files kept, the rest removed
delta_fetch  --delta: parts with nothing to write skipped, plain parts read by ranges
fetch      download (prefetch, -J budget), checksum, decompress, untar; every file arrived
streams    the fetch's plumbing: the shared read budget, stored bytes, a bounded pipe
extract    writing members safely into a data directory or a tablespace location
tarparse   a push parser for tar streams (PAX, GNU long names), contents never copied
finish     pg_control checked (core.postgres.control), pg_wal and tablespace links,
           backup_manifest, fsync, pg_control last; the result
configure  restore_command's directory and credentials, the settings, recovery.signal
recovery   restore_command, its credentials, and the settings PostgreSQL recovers with
targets    recovery targets, and which backup a point-in-time restore starts from
pipeline   run_restore(RestoreRequest, reporter) -> RestoreResult: the list of phases
"""

from __future__ import annotations

from core.restore.pipeline import run_restore
from core.restore.plan import default_pgvault_command, validate_request
from core.restore.request import RestoreRequest, RestoreResult, result_summary
from core.restore.targets import RecoveryTarget, make_target

__all__ = [
    "RecoveryTarget",
    "RestoreRequest",
    "RestoreResult",
    "default_pgvault_command",
    "make_target",
    "result_summary",
    "run_restore",
    "validate_request",
]
