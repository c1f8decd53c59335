"""Restore and point-in-time recovery (`pgvault --batch restore`).

tarparse   a push parser for tar streams (PAX, GNU long names), contents never copied
extract    writing members safely into a data directory or a tablespace location
targets    recovery targets, and which backup a point-in-time restore starts from
recovery   restore_command, its credentials, and the settings PostgreSQL recovers with
pipeline   run_restore(RestoreRequest, reporter) -> RestoreResult
"""

from __future__ import annotations

from core.restore.pipeline import (
    RestoreRequest,
    RestoreResult,
    default_pgvault_command,
    result_summary,
    run_restore,
    validate_request,
)
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
