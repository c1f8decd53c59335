"""Vaults, backup instances and run records: what a vault stores besides its policies.

The database password never appears here: an instance names a secret reference
(`env:NAME` or `file:PATH`) that is read when a backup runs. JSON shapes follow Azure's
backup instance where a name exists there (friendlyName, datasourceAuthCredentials,
policyInfo, currentProtectionState).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs, urlsplit

from core.errors import InputError, OperationFailed
from core.protection.durations import parse_duration
from core.protection.jsondoc import Node
from core.protection.notify_urls import redact_notify_url
from core.protection.secretref import SecretReference, SecretStoreType
from core.secrets import redact
from core.urls import CREDENTIAL_PARAMS

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
#: Azure's resource ID of a backup policy (ARM matches these segments case-insensitively)
_ARM_POLICY_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.DataProtection/"
    r"backupVaults/(?P<vault>[^/]+)/backupPolicies/(?P<name>[^/]+)/?$",
    re.IGNORECASE,
)
_USERINFO = re.compile(r"://[^/@\s]*:[^/@\s]*@")
_CONNINFO_PASSWORD = re.compile(r"(?i)(^|\s)password\s*=|://[^/@\s]*:[^/@\s]*@|[?&]password=")


def validate_name(kind: str, name: str) -> str:
    """A vault, policy or instance name: letters, digits, `_.-`, at most 63 characters."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(
            f"invalid {kind} name {name!r}: use letters, digits, '_', '.' and '-' "
            "(at most 63, starting with a letter or digit)"
        )
    return name


def check_conninfo(conninfo: str, where: str) -> None:
    """A conninfo libpq can read, else InputError with libpq's reason: refused when it is
    given, not at the first backup (whose error would hold the password appended to it)."""
    import psycopg2.extensions

    try:
        psycopg2.extensions.parse_dsn(conninfo)
    except psycopg2.ProgrammingError as exc:
        reason = str(exc).strip().removeprefix("invalid dsn: ")
        raise InputError(
            f"{where}: {redact(conninfo)!r} is not a libpq connection string: {reason}"
        ) from None


def utc_text(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


def parse_time(node: Node) -> datetime:
    try:
        when = datetime.fromisoformat(node.text())
    except ValueError:
        raise node.fail("not an ISO 8601 date-time") from None
    if when.tzinfo is None:
        raise node.fail("the date-time needs a UTC offset")
    return when.astimezone(UTC)


@dataclass(frozen=True)
class Datasource:
    """How to reach the database: a libpq conninfo without a password, plus the reference."""

    conninfo: str
    secret: SecretReference | None = None

    def __post_init__(self) -> None:
        if _CONNINFO_PASSWORD.search(self.conninfo):
            raise InputError(
                "the datasource conninfo must not hold a password; give a secret reference "
                "(--secret-store-type env|file --secret-store-uri ...) instead"
            )


@dataclass(frozen=True)
class Vault:
    """A destination plus settings; its policies, instances and runs are stored in it."""

    name: str
    destination: str
    immutability_days: int | None = None
    created: datetime | None = None
    #: apprise URLs told about every instance's events (they may hold secrets: see to_json)
    notify: tuple[str, ...] = ()
    #: ISO 8601 duration: WAL archived longer ago than this is notified (None: not watched)
    wal_lag_threshold: str | None = None

    def __post_init__(self) -> None:
        if self.wal_lag_threshold is not None:
            lag = parse_duration(self.wal_lag_threshold, f"vault {self.name!r} WAL lag threshold")
            if lag.is_zero:
                raise InputError(f"vault {self.name!r}: the WAL lag threshold must be above zero")
        query = parse_qs(urlsplit(self.destination).query)
        if any(key.upper() in CREDENTIAL_PARAMS for key in query) or _USERINFO.search(
            self.destination
        ):
            raise InputError(
                f"vault {self.name!r}: the destination must not carry credentials "
                "(store core.urls.public_url of the location)"
            )
        if self.immutability_days is not None and self.immutability_days < 1:
            raise InputError(f"vault {self.name!r}: immutability days must be at least 1")

    def to_json(self) -> dict[str, Any]:
        """The vault as shown: notification URLs with their secrets masked."""
        document = self.stored_json()
        document["notify"] = [redact_notify_url(url) for url in self.notify]
        return document

    def stored_json(self) -> dict[str, Any]:
        """The vault as stored in its destination (the agent needs the URLs whole)."""
        document: dict[str, Any] = {
            "destination": self.destination,
            "immutabilityDays": self.immutability_days,
            "name": self.name,
            "notify": list(self.notify),
            "objectType": "PgvaultVault",
            "walLagThreshold": self.wal_lag_threshold,
        }
        if self.created is not None:
            document["created"] = utc_text(self.created)
        return document

    @classmethod
    def from_json(cls, document: Any, what: str = "vault") -> Vault:
        node = Node(document, "$", what)
        node.object_type("PgvaultVault")
        node.only_keys(
            {
                "created",
                "destination",
                "immutabilityDays",
                "name",
                "notify",
                "objectType",
                "walLagThreshold",
            }
        )
        days = node.child("immutabilityDays")
        return cls(
            validate_name("vault", node.child("name").text()),
            node.child("destination").text(),
            None if days.value is None else days.integer(),
            parse_time(node.child("created")) if node.child("created").value else None,
            _urls(node.child("notify")),
            node.child("walLagThreshold").optional_text(),
        )


class SecondaryRetention(StrEnum):
    """What happens to a backup's copy in the secondary destination when retention deletes
    the backup at the primary: kept there (the default), or deleted there too."""

    KEEP = "keep"
    FOLLOW = "follow"


class ProtectionState(StrEnum):
    """Azure's CurrentProtectionState values pgvault uses."""

    CONFIGURED = "ProtectionConfigured"
    STOPPED = "ProtectionStopped"


@dataclass(frozen=True)
class BackupInstance:
    """A database under protection: which server, how to connect, which policy."""

    name: str
    server_name: str
    datasource: Datasource
    policy_name: str
    state: ProtectionState = ProtectionState.CONFIGURED
    created: datetime | None = None
    #: apprise URLs told about this instance's events, besides the vault's
    notify: tuple[str, ...] = ()
    #: where the agent copies each new backup (core.copy): a URL without credentials
    secondary_destination: str | None = None
    #: FOLLOW: retention's deletions at the primary are repeated at the secondary
    secondary_retention: SecondaryRetention = SecondaryRetention.KEEP

    def __post_init__(self) -> None:
        if self.secondary_retention is SecondaryRetention.FOLLOW and not self.secondary_destination:
            raise InputError(
                f"backup instance {self.name!r}: secondary retention 'follow' needs a "
                "secondary destination (--secondary-destination URL)"
            )

    def require_protected(self, vault: str, what: str) -> None:
        """Refuse `what` (an on-demand backup) while protection is stopped, as Azure does: a
        state error (exit 1), not bad input; nothing is claimed or run."""
        if self.state is not ProtectionState.CONFIGURED:
            raise OperationFailed(
                f"backup instance {self.name} of vault {vault} is {self.state}: {what} needs "
                f"protection resumed first (backup-instance resume-protection --vault {vault} "
                f"--name {self.name})"
            )

    def to_json(self) -> dict[str, Any]:
        """The instance as shown: notification URLs with their secrets masked."""
        document = self.stored_json()
        if self.notify:
            document["notify"] = [redact_notify_url(url) for url in self.notify]
        return document

    def stored_json(self) -> dict[str, Any]:
        """The instance as stored in the vault (the agent needs the URLs whole)."""
        credentials = None
        if self.datasource.secret is not None:
            credentials = {
                "objectType": "SecretStoreBasedAuthCredentials",
                "secretStoreResource": {
                    "secretStoreType": str(self.datasource.secret.store_type),
                    "uri": self.datasource.secret.uri,
                },
            }
        document: dict[str, Any] = {
            "currentProtectionState": str(self.state),
            "dataSourceInfo": {"conninfo": self.datasource.conninfo, "objectType": "Datasource"},
            "datasourceAuthCredentials": credentials,
            "friendlyName": self.name,
            "objectType": "BackupInstance",
            "policyInfo": {"policyId": self.policy_name},
            "serverName": self.server_name,
        }
        if self.notify:
            document["notify"] = list(self.notify)
        if self.secondary_destination:
            document["secondaryDestination"] = self.secondary_destination
            document["secondaryRetention"] = str(self.secondary_retention)
        if self.created is not None:
            document["created"] = utc_text(self.created)
        return document

    @classmethod
    def from_json(
        cls, document: Any, what: str = "backup instance", vault: str | None = None
    ) -> BackupInstance:
        """`vault`: the vault the instance goes into, which an ARM policyId must name."""
        node = Node(document, "$", what)
        node.object_type("BackupInstance")
        node.only_keys(
            {
                "created",
                "currentProtectionState",
                "dataSourceInfo",
                "datasourceAuthCredentials",
                "friendlyName",
                "notify",
                "objectType",
                "policyInfo",
                "secondaryDestination",
                "secondaryRetention",
                "serverName",
            }
        )
        info = node.child("dataSourceInfo")
        info.object_type("Datasource")
        info.only_keys({"conninfo", "objectType"})
        conninfo = info.child("conninfo").text()
        secret = _secret(node.child("datasourceAuthCredentials"))
        try:  # what Datasource refuses (a password in the conninfo) names no path of its own
            datasource = Datasource(conninfo, secret)
        except InputError as exc:
            raise info.fail(str(exc)) from None
        state = node.child("currentProtectionState")
        retention = node.child("secondaryRetention")
        follow = SecondaryRetention(
            retention.choice(tuple(r.value for r in SecondaryRetention))
            if retention.value is not None
            else SecondaryRetention.KEEP
        )
        if follow is SecondaryRetention.FOLLOW and node.child("secondaryDestination").value is None:
            raise retention.fail("'follow' needs a secondaryDestination")
        return cls(
            validate_name("backup instance", node.child("friendlyName").text()),
            node.child("serverName").text(),
            datasource,
            policy_name(node.child("policyInfo").child("policyId"), vault),
            ProtectionState(state.choice(tuple(s.value for s in ProtectionState)))
            if state.value
            else ProtectionState.CONFIGURED,
            parse_time(node.child("created")) if node.child("created").value else None,
            _urls(node.child("notify")),
            _secondary(node.child("secondaryDestination")),
            follow,
        )


def policy_name(node: Node, vault: str | None) -> str:
    """policyInfo.policyId (create) or --policy (update): a policy name, or Azure's ARM ID
    of one (`/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.DataProtection/
    backupVaults/<vault>/backupPolicies/<name>`), whose vault must be the instance's."""
    text = node.text()
    if not text.startswith("/"):
        return validate_name("policy", text)
    match = _ARM_POLICY_ID.match(text)
    if match is None:
        raise node.fail(
            f"{text!r} is neither a policy name nor a backup policy's ID (/subscriptions/<sub>/"
            "resourceGroups/<rg>/providers/Microsoft.DataProtection/backupVaults/<vault>/"
            "backupPolicies/<name>)"
        )
    if vault is not None and match["vault"] != vault:
        raise node.fail(
            f"the policy ID names vault {match['vault']!r}, not {vault!r}, the instance's "
            "vault: an instance uses a policy of its own vault"
        )
    try:
        return validate_name("policy", match["name"])
    except InputError as exc:
        raise node.fail(str(exc)) from None


def _secondary(node: Node) -> str | None:
    if node.value is None:
        return None
    from core.copy.job import secondary_url

    try:
        return secondary_url(node.text(), "the URL")
    except InputError as exc:
        raise node.fail(str(exc)) from None


def _urls(node: Node) -> tuple[str, ...]:
    """A list of notification URLs (absent: none); checked when they are set, not here."""
    return tuple(item.text() for item in node.items())


def _secret(node: Node) -> SecretReference | None:
    if node.value is None:
        return None
    node.object_type("SecretStoreBasedAuthCredentials")
    node.only_keys({"objectType", "secretStoreResource"})
    resource = node.child("secretStoreResource")
    resource.only_keys({"secretStoreType", "uri"})
    kind = resource.child("secretStoreType").choice(tuple(s.value for s in SecretStoreType))
    return SecretReference.parse(
        f"{kind}:{resource.child('uri').text()}", f"{node.what} {resource.path}"
    )


class RunState(StrEnum):
    CLAIMED = "claimed"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RunTrigger(StrEnum):
    SCHEDULED = "ScheduledBackup"
    ADHOC = "OnDemandBackup"


@dataclass(frozen=True)
class RunRecord:
    """One slot of one instance: who claimed it, the job that ran it, how it ended."""

    instance: str
    slot: datetime
    rule: str
    trigger: RunTrigger
    state: RunState
    claimed_by: str
    tag: str | None = None
    job_id: str | None = None
    backup_id: str | None = None
    finished: datetime | None = None
    error: str | None = None
    #: who holds the claim, as a backup's lease names its owner (core.catalog.owner), and the
    #: heartbeat's timeout: what proves the holder gone (core.protection.claims)
    owner: dict[str, Any] | None = field(default=None, compare=False)
    #: a retried run: the claim before it, whose holder was gone, and why that was proven
    abandoned: str | None = None
    #: a run its agent cancelled when it was stopped (SIGTERM), and why: the claim is
    #: released, and the next pass runs the slot again while it is the newest (stopping.py)
    interrupted: str | None = None
    #: a SUCCEEDED run whose copy to the secondary its stopped agent cancelled, and why: the
    #: next pass makes the copy (runs.redo_interrupted_copies)
    copy_interrupted: str | None = None
    #: a SUCCEEDED run's copy to the secondary while it is being made: the process making it
    #: (host, pid, pidStart, as the job store records a job's) and a token; cleared when the
    #: copy ends. Left by a killed process: the next pass makes the copy (runs.copy_killed)
    copy_started: dict[str, Any] | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "abandonedClaim": self.abandoned,
            "backupId": self.backup_id,
            "claimedBy": self.claimed_by,
            "copyInterrupted": self.copy_interrupted,
            "copyStarted": self.copy_started,
            "error": redact(self.error) if self.error else None,
            "finished": utc_text(self.finished) if self.finished else None,
            "instance": self.instance,
            "interrupted": self.interrupted,
            "jobId": self.job_id,
            "objectType": "PgvaultRun",
            "owner": self.owner,
            "rule": self.rule,
            "slot": utc_text(self.slot),
            "state": str(self.state),
            "tag": self.tag,
            "trigger": str(self.trigger),
        }

    @classmethod
    def from_json(cls, document: Any, what: str = "run record") -> RunRecord:
        node = Node(document, "$", what)
        node.object_type("PgvaultRun")
        finished = node.child("finished")
        owner = node.child("owner")
        started = node.child("copyStarted").value
        return cls(
            instance=node.child("instance").text(),
            slot=parse_time(node.child("slot")),
            rule=node.child("rule").text(),
            trigger=RunTrigger(node.child("trigger").choice(tuple(t.value for t in RunTrigger))),
            state=RunState(node.child("state").choice(tuple(s.value for s in RunState))),
            claimed_by=node.child("claimedBy").text(),
            tag=node.child("tag").optional_text(),
            job_id=node.child("jobId").optional_text(),
            backup_id=node.child("backupId").optional_text(),
            finished=parse_time(finished) if finished.value else None,
            error=node.child("error").optional_text(),
            owner=owner.value if isinstance(owner.value, dict) else None,
            abandoned=node.child("abandonedClaim").optional_text(),
            interrupted=node.child("interrupted").optional_text(),
            copy_interrupted=node.child("copyInterrupted").optional_text(),
            copy_started=started if isinstance(started, dict) else None,
        )


@dataclass(frozen=True)
class InstanceError:
    """What kept the agent from handling an instance in its last pass (outside a slot's
    run record: an unreadable policy, retention failing), shown by `status`."""

    instance: str
    at: datetime
    error: str
    agent: str

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "at": utc_text(self.at),
            "error": redact(self.error),
            "instance": self.instance,
        }

    @classmethod
    def from_json(cls, document: Any) -> InstanceError:
        node = Node(document, "$", "instance error")
        return cls(
            node.child("instance").text(),
            parse_time(node.child("at")),
            node.child("error").text(),
            node.child("agent").text(),
        )
