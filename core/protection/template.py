"""The default policy template (`policy get-default-policy-template`): the seed's shape."""

from __future__ import annotations

import copy
from typing import Any

_TEMPLATE: dict[str, Any] = {
    "datasourceTypes": ["Microsoft.DBforPostgreSQL/servers/databases"],
    "name": "OssPolicy1",
    "objectType": "BackupPolicy",
    "policyRules": [
        {
            "backupParameters": {"backupType": "Full", "objectType": "AzureBackupParams"},
            "dataStore": {"dataStoreType": "VaultStore", "objectType": "DataStoreInfoBase"},
            "name": "BackupWeekly",
            "objectType": "AzureBackupRule",
            "trigger": {
                "objectType": "ScheduleBasedTriggerContext",
                "schedule": {
                    "repeatingTimeIntervals": ["R/2021-08-15T06:30:00+00:00/P1W"],
                    "timeZone": "UTC",
                },
                "taggingCriteria": [
                    {
                        "isDefault": True,
                        "tagInfo": {"id": "Default_", "tagName": "Default"},
                        "taggingPriority": 99,
                    }
                ],
            },
        },
        {
            "isDefault": True,
            "lifecycles": [
                {
                    "deleteAfter": {"duration": "P3M", "objectType": "AbsoluteDeleteOption"},
                    "sourceDataStore": {
                        "dataStoreType": "VaultStore",
                        "objectType": "DataStoreInfoBase",
                    },
                    "targetDataStoreCopySettings": [],
                }
            ],
            "name": "Default",
            "objectType": "AzureRetentionRule",
        },
    ],
}


def default_policy_template() -> dict[str, Any]:
    """Weekly full backups on Sundays 06:30 UTC, kept three months in the VaultStore."""
    return copy.deepcopy(_TEMPLATE)
