"""Azure Backup's protection model: vaults, policies, schedules, tagging and retention.

Self-contained: it uses the object-store API and core.errors, and nothing here runs a
backup. The agent and the faces build on these names.
"""

from __future__ import annotations

from core.protection.describe import describe_policy, describe_schedule
from core.protection.durations import Duration, parse_duration
from core.protection.model import (
    BackupInstance,
    Datasource,
    ProtectionState,
    RunRecord,
    RunState,
    RunTrigger,
    Vault,
)
from core.protection.policy import BackupPolicy, DataStoreType, dump_policy, policy_to_json
from core.protection.policy_read import parse_policy, read_policy
from core.protection.retention import Action, BackupPoint, RetentionPlan, plan_retention
from core.protection.schedule import CompiledSchedule, compile_schedule
from core.protection.secretref import SecretReference
from core.protection.simulate import Simulation, simulate
from core.protection.tagging import adhoc_tag, choose_tag, tag_for_backup
from core.protection.vaultstore import VaultStore, list_vaults

__all__ = [
    "Action",
    "BackupInstance",
    "BackupPoint",
    "BackupPolicy",
    "CompiledSchedule",
    "DataStoreType",
    "Datasource",
    "Duration",
    "ProtectionState",
    "RetentionPlan",
    "RunRecord",
    "RunState",
    "RunTrigger",
    "SecretReference",
    "Simulation",
    "Vault",
    "VaultStore",
    "adhoc_tag",
    "choose_tag",
    "compile_schedule",
    "describe_policy",
    "describe_schedule",
    "dump_policy",
    "list_vaults",
    "parse_duration",
    "parse_policy",
    "plan_retention",
    "policy_to_json",
    "read_policy",
    "simulate",
    "tag_for_backup",
]
