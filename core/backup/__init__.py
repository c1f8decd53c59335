"""The physical backup, as phases over one state: start, plan, stream, stop, seal.

`run_backup` (core.backup.pipeline) runs them; core.backup.request builds and checks the
request; core.backup.lease cleans up after backups whose process died.
"""

from core.backup.lease import lease_is_dead, reap_interrupted
from core.backup.pipeline import run_backup
from core.backup.request import (
    DEFAULT_MAX_ARCHIVE_SIZE,
    MAX_ARCHIVE_SIZE,
    BackupRequest,
    make_backup_request,
    validate_request,
)
from core.backup.result import BackupResult, result_summary

__all__ = [
    "DEFAULT_MAX_ARCHIVE_SIZE",
    "MAX_ARCHIVE_SIZE",
    "BackupRequest",
    "BackupResult",
    "lease_is_dead",
    "make_backup_request",
    "reap_interrupted",
    "result_summary",
    "run_backup",
    "validate_request",
]
