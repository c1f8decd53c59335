"""The seed's policy documents and the edits its CLI helpers make, as test inputs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"


def template_text() -> str:
    """The seed's `backup-policy get-default-policy-template` output, exactly as shown."""
    return (DATA / "default_policy_template.json").read_text()


def osspol5_text() -> str:
    """`az dataprotection backup-policy show ... --name osspol5`, exactly as the seed shows it."""
    return (DATA / "osspol5_show.json").read_text()


def edited_policy() -> dict[str, Any]:
    """The template after the seed's helper commands, in the shapes those helpers print.

    trigger set (Sun/Wed/Fri 22:00), retention-rule set Monthly with the two lifecycles of
    create-lifecycle (copy settings as one object, or null), then tag set Monthly with
    create-absolute-criteria FirstOfMonth.
    """
    policy: dict[str, Any] = json.loads(template_text())
    rule = policy["policyRules"][0]
    rule["trigger"]["schedule"]["repeatingTimeIntervals"] = [
        "R/2021-08-15T22:00:00+00:00/P1W",
        "R/2021-08-18T22:00:00+00:00/P1W",
        "R/2021-08-20T22:00:00+00:00/P1W",
    ]
    vault_to_archive = {
        "deleteAfter": {"objectType": "AbsoluteDeleteOption", "duration": "P6M"},
        "sourceDataStore": {"objectType": "DataStoreInfoBase", "dataStoreType": "VaultStore"},
        "targetDataStoreCopySettings": {
            "dataStore": {"objectType": "DataStoreInfoBase", "dataStoreType": "ArchiveStore"},
            "copyAfter": {"objectType": "CopyOnExpiryOption"},
        },
    }
    on_archive = {
        "deleteAfter": {"objectType": "AbsoluteDeleteOption", "duration": "P24M"},
        "sourceDataStore": {"objectType": "DataStoreInfoBase", "dataStoreType": "ArchiveStore"},
        "targetDataStoreCopySettings": None,
    }
    policy["policyRules"].append(
        {
            "objectType": "AzureRetentionRule",
            "isDefault": False,
            "name": "Monthly",
            "lifecycles": [vault_to_archive, on_archive],
        }
    )
    rule["trigger"]["taggingCriteria"].append(
        {
            "criteria": [
                {"objectType": "ScheduleBasedBackupCriteria", "absoluteCriteria": ["FirstOfMonth"]}
            ],
            "isDefault": False,
            "taggingPriority": 15,
            "tagInfo": {"tagName": "Monthly"},
        }
    )
    return policy


def with_change(document: dict[str, Any], path: str, value: Any) -> str:
    """document with the value at a dotted path (list indexes as numbers) replaced, as text."""
    changed = copy.deepcopy(document)
    *parents, last = path.split(".")
    node: Any = changed
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if last.isdigit():
        node[int(last)] = value
    elif value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return json.dumps(changed)


_DELETE = object()
DELETE = _DELETE
