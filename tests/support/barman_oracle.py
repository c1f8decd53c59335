"""barman's own retention code as an oracle: classify a catalog with barman 3.19's classes.

Runs in barman-cloud's virtualenv (a subprocess), with barman's clock replaced by the
moment the test chose, so pgvault's evaluation can be compared with barman's on any catalog.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from datetime import datetime

from core.catalog.backup_info import BackupInfo
from tests.support.restore import barman_bin

_SCRIPT = r"""
import json, sys
from datetime import datetime
import barman.output  # noqa: F401  (breaks barman's import cycle)
import barman.retention_policies as rp
from barman.infofile import BackupInfo

spec = json.load(sys.stdin)
now = datetime.fromisoformat(spec["now"])


class Clock(datetime):
    @classmethod
    def now(cls, tz=None):
        return now.astimezone(tz)


rp.datetime = Clock


class Keeps:
    def get_keep_target(self, backup_id):
        return spec["keeps"].get(backup_id)


backups = {}
for item in spec["backups"]:
    info = BackupInfo(item["id"])
    info.status = item["status"]
    info.end_time = datetime.fromisoformat(item["end"]) if item["end"] else None
    backups[item["id"]] = info
server = rp.ServerMetadata("pg", backups, Keeps(), spec["minimum"])
for cls in (rp.RedundancyRetentionPolicy, rp.RecoveryWindowRetentionPolicy):
    policy = cls.create(server, "BASE", spec["policy"])
    if policy is not None:
        break
print(json.dumps(policy.report()))
"""


def barman_report(
    policy: str,
    backups: Sequence[BackupInfo],
    keeps: Mapping[str, str],
    minimum: int,
    now: datetime,
) -> dict[str, str]:
    """barman's retention status of every backup (VALID, OBSOLETE, KEEP:FULL, -, ...)."""
    python = os.path.join(os.path.dirname(barman_bin("barman-cloud-backup-delete")), "python")
    spec = {
        "policy": policy,
        "minimum": minimum,
        "now": now.isoformat(),
        "keeps": dict(keeps),
        "backups": [
            {
                "id": b.backup_id,
                "status": b.status,
                "end": b.end_time.isoformat() if b.end_time else None,
            }
            for b in backups
        ],
    }
    result = subprocess.run(
        [python, "-c", _SCRIPT],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report: dict[str, str] = json.loads(result.stdout)
    return report
