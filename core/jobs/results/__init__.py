"""Every job kind's typed result, the facts a job notes while it runs, and their JSON forms.

- registry: the result type of each kind, JsonResult for the others, reading and writing
- details: JobDetails, the facts recorded while a job runs (the backup ID)
- backup, restore, verify, delete, wal_push, wal_repair, logical, keys, rehydrate,
  copy: one
  result type per built-in kind
- fields: typed reads of a stored JSON object
"""

from core.jobs.results.backup import BackupJobResult
from core.jobs.results.copy import CopyJobResult
from core.jobs.results.delete import DeletedBackup, DeleteJobResult
from core.jobs.results.details import JobDetails
from core.jobs.results.fields import MalformedResult
from core.jobs.results.keys import KeysJobResult
from core.jobs.results.logical import LogicalJobResult
from core.jobs.results.registry import (
    RESULT_TYPES,
    JobResult,
    JsonResult,
    ResultRecord,
    read_result,
)
from core.jobs.results.rehydrate import RehydrateJobResult
from core.jobs.results.restore import RestoreJobResult
from core.jobs.results.verify import VerifyJobResult
from core.jobs.results.wal_push import WalPushJobResult
from core.jobs.results.wal_repair import WalRepairJobResult

__all__ = [
    "RESULT_TYPES",
    "BackupJobResult",
    "CopyJobResult",
    "DeleteJobResult",
    "DeletedBackup",
    "JobDetails",
    "JobResult",
    "JsonResult",
    "KeysJobResult",
    "LogicalJobResult",
    "MalformedResult",
    "RehydrateJobResult",
    "RestoreJobResult",
    "ResultRecord",
    "VerifyJobResult",
    "WalPushJobResult",
    "WalRepairJobResult",
    "read_result",
]
