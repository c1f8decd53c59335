"""A vault's state in its destination, under `.pgvault/vaults/<vault>/`.

barman-cloud only lists `<server>/base/` and `<server>/wals/` for the server it is given, and
pgvault's server discovery skips names starting with a dot, so nothing here is mistaken for
a catalog. Creation uses a conditional write (PutOptions(if_absent=True): S3 If-None-Match,
Azure If-None-Match: *, GCS ifGenerationMatch=0, O_EXCL locally), so two hosts creating the
same vault, policy, instance or run record cannot both succeed.

    .pgvault/vaults/<vault>/vault.json
    .pgvault/vaults/<vault>/policies/<policy>.json
    .pgvault/vaults/<vault>/instances/<instance>.json
    .pgvault/vaults/<vault>/runs/<instance>/<slot as 20260329T010000Z>[-adhoc].json
    .pgvault/vaults/<vault>/runs/<instance>/<slot ...>.json.takeover-<token>  (empty)
    .pgvault/vaults/<vault>/runs/<instance>/last-error  (the agent's last error, while current)
    .pgvault/vaults/<vault>/notices/<instance>/<event>-<fingerprint>.json
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

from core.errors import (
    ContainerNotFound,
    InputError,
    ObjectExists,
    ObjectNotFound,
    OperationFailed,
)
from core.protection.jsondoc import dumps, loads
from core.protection.model import (
    BackupInstance,
    InstanceError,
    RunRecord,
    RunTrigger,
    Vault,
    validate_name,
)
from core.protection.policy import BackupPolicy, dump_policy
from core.protection.policy_read import parse_policy
from core.storage import CommonPrefix, ObjectStore, PutOptions

ROOT = ".pgvault/vaults/"
_CREATE = PutOptions(if_absent=True)


def list_vaults(store: ObjectStore) -> list[str]:
    """The names of the vaults stored in a destination, sorted."""
    names = []
    for item in store.list_entries(ROOT, delimiter="/"):
        if isinstance(item, CommonPrefix):
            names.append(item.prefix.rstrip("/").rsplit("/", 1)[-1])
    return sorted(names)


def slot_key(slot: datetime, trigger: RunTrigger = RunTrigger.SCHEDULED) -> str:
    """A run record's file name: the UTC slot, sortable; ad hoc runs are marked."""
    text = slot.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return text + ("-adhoc" if trigger is RunTrigger.ADHOC else "")


class VaultUnavailable(OperationFailed):
    """A vault's state is not in its destination: the destination is gone (a directory
    removed, a file system not mounted, a bucket deleted) or another host deleted the vault.
    Not bad input (exit 1): the command named a vault this host knows."""


class VaultStore:
    """One vault's policies, instances and run records in an open ObjectStore."""

    def __init__(self, store: ObjectStore, vault: str) -> None:
        self.store = store
        self.name = validate_name("vault", vault)
        self.prefix = f"{ROOT}{self.name}/"

    # ---- the vault ----------------------------------------------------------------------

    def create(self, vault: Vault) -> None:
        """Store a new vault; InputError if one of that name is there already."""
        if not self.create_or_exists(vault):
            raise InputError(f"vault {self.name!r} already exists in this destination")

    def create_or_exists(self, vault: Vault) -> bool:
        """Store a new vault (a conditional write); False, nothing written, when one of
        that name is there already (another host created it: attach to it)."""
        if vault.name != self.name:
            raise ValueError(f"vault {vault.name!r} stored as {self.name!r}")
        try:
            self.store.put_bytes(
                f"{self.prefix}vault.json", dumps(vault.stored_json()).encode(), _CREATE
            )
        except ObjectExists:
            return False
        return True

    def load(self) -> Vault:
        """The stored vault; VaultUnavailable when its vault.json is not there (nor its
        bucket or container: deleted)."""
        key = f"{self.prefix}vault.json"
        try:
            document = self.store.get_bytes(key)
        except ObjectNotFound:
            raise VaultUnavailable(f"there is no {key}") from None
        except ContainerNotFound as exc:
            raise VaultUnavailable(str(exc)) from None
        return Vault.from_json(loads(document, f"vault {self.name!r}"))

    def delete(self) -> int:
        """Delete the vault and everything it stores; refused while instances use it."""
        instances = self.list_instances()
        if instances:
            raise InputError(
                f"vault {self.name!r} still protects {', '.join(instances)}; "
                "delete those instances first"
            )
        self.load()
        return self.store.delete_many(item.key for item in self.store.list_objects(self.prefix))

    # ---- policies -----------------------------------------------------------------------

    def create_policy(self, name: str, policy: BackupPolicy) -> BackupPolicy:
        """Store a new policy under name (policies are replaced by new ones, not updated)."""
        validate_name("policy", name)
        named = replace(policy, name=name)
        self._create_text(self._policy_key(name), dump_policy(named), f"policy {name!r}")
        return named

    def get_policy(self, name: str) -> BackupPolicy:
        key = self._policy_key(validate_name("policy", name))
        what = f"policy {name!r} in vault {self.name!r}"
        return parse_policy(self._get(key, what), what)

    def list_policies(self) -> list[str]:
        return self._names("policies/")

    def delete_policy(self, name: str) -> None:
        users = [i.name for i in self.instances() if i.policy_name == name]
        if users:
            raise InputError(
                f"policy {name!r} is used by {', '.join(users)}; move them to another policy "
                "(backup-instance update --policy NAME) or delete them first"
            )
        self.get_policy(name)
        self.store.delete_many([self._policy_key(name)])

    # ---- backup instances -----------------------------------------------------------------

    def create_instance(self, instance: BackupInstance) -> None:
        """Store a new instance; its policy must exist in this vault."""
        self.get_policy(instance.policy_name)
        self._create(
            self._instance_key(instance.name),
            instance.stored_json(),
            f"backup instance {instance.name!r}",
        )

    def update_instance(self, instance: BackupInstance) -> None:
        """Replace an existing instance (stop or resume protection, a new policy)."""
        self.get_instance(instance.name)
        self.get_policy(instance.policy_name)
        document = dumps(instance.stored_json()).encode()
        self.store.put_bytes(self._instance_key(instance.name), document)

    def update(self, vault: Vault) -> None:
        """Replace the vault's settings (its notification URLs, its WAL lag threshold)."""
        self.load()
        self.store.put_bytes(f"{self.prefix}vault.json", dumps(vault.stored_json()).encode())

    def get_instance(self, name: str) -> BackupInstance:
        what = f"backup instance {name!r} in vault {self.name!r}"
        key = self._instance_key(validate_name("backup instance", name))
        return BackupInstance.from_json(self._read(key, what), what)

    def list_instances(self) -> list[str]:
        return self._names("instances/")

    def instances(self) -> list[BackupInstance]:
        return [self.get_instance(name) for name in self.list_instances()]

    def delete_instance(self, name: str) -> int:
        """Delete an instance, its run records and notices (its backups stay in the catalog)."""
        self.get_instance(name)
        runs = [item.key for item in self.store.list_objects(self._runs_prefix(name))]
        notices = [item.key for item in self.store.list_objects(self.notices_prefix(name))]
        return self.store.delete_many([*runs, *notices, self._instance_key(name)])

    def notices_prefix(self, instance: str) -> str:
        """Where core.protection.notices records what was notified about an instance."""
        return f"{self.prefix}notices/{validate_name('backup instance', instance)}/"

    # ---- run records ------------------------------------------------------------------------

    def claim_run(self, record: RunRecord) -> bool:
        """Create the record of a slot; False when another agent claimed it first."""
        key = self._run_key(record)
        try:
            self.store.put_bytes(key, dumps(record.to_json()).encode(), _CREATE)
        except ObjectExists:
            return False
        return True

    def update_run(self, record: RunRecord) -> None:
        """Rewrite a claimed run's record (its job, backup and end)."""
        self.store.put_bytes(self._run_key(record), dumps(record.to_json()).encode())

    def run_heartbeat(self, record: RunRecord) -> datetime | None:
        """When the store last wrote a run's record (its holder renews it); None: unknown."""
        try:
            return self.store.head(self._run_key(record)).modified
        except ObjectNotFound:
            return None

    def claim_takeover(self, record: RunRecord, token: str) -> bool:
        """Win the right to take over a claim whose holder is gone (a conditional write of
        a marker named after the holder's token); False when another agent won it."""
        marker = f"{self._run_key(record)}.takeover-{token}"
        try:
            self.store.put_bytes(marker, b"", _CREATE)
        except ObjectExists:
            return False
        return True

    def get_run(
        self, instance: str, slot: datetime, trigger: RunTrigger = RunTrigger.SCHEDULED
    ) -> RunRecord:
        key = f"{self._runs_prefix(instance)}{slot_key(slot, trigger)}.json"
        what = f"run {slot.isoformat()} of {instance!r} ({key})"
        return RunRecord.from_json(self._read(key, what), what)

    def runs(self, instance: str) -> Iterator[RunRecord]:
        """An instance's run records, oldest slot first."""
        listed = self.store.list_objects(self._runs_prefix(instance))
        # takeover markers (claim_takeover) sit beside the records
        keys = sorted(item.key for item in listed if item.key.endswith(".json"))
        for key in keys:
            # a damaged record's error names its file, for the operator to mend or remove
            yield RunRecord.from_json(self._read(key, f"run record {key}"), f"run record {key}")

    def record_error(self, error: InstanceError) -> None:
        """The agent could not handle an instance in a pass: kept until a pass that can."""
        self.store.put_bytes(self._error_key(error.instance), dumps(error.to_json()).encode())

    def clear_error(self, instance: str) -> None:
        """A pass handled the instance: its last error, if any, is over."""
        key = self._error_key(instance)
        if self.store.exists(key):
            self.store.delete_many([key])

    def last_error(self, instance: str) -> InstanceError | None:
        """The error of the agent's last pass over the instance, when that pass failed."""
        key = self._error_key(instance)
        try:
            document = self.store.get_bytes(key)
        except ObjectNotFound:
            return None
        return InstanceError.from_json(loads(document, f"instance error {key}"))

    # ---- keys and reading ---------------------------------------------------------------------

    def _policy_key(self, name: str) -> str:
        return f"{self.prefix}policies/{name}.json"

    def _instance_key(self, name: str) -> str:
        return f"{self.prefix}instances/{name}.json"

    def _runs_prefix(self, instance: str) -> str:
        return f"{self.prefix}runs/{validate_name('backup instance', instance)}/"

    def _error_key(self, instance: str) -> str:
        # beside the run records (no .json: runs() skips it), so it goes with them
        return f"{self._runs_prefix(instance)}last-error"

    def _run_key(self, record: RunRecord) -> str:
        return f"{self._runs_prefix(record.instance)}{slot_key(record.slot, record.trigger)}.json"

    def _names(self, folder: str) -> list[str]:
        prefix = f"{self.prefix}{folder}"
        return sorted(
            item.key.rsplit("/", 1)[-1].removesuffix(".json")
            for item in self.store.list_objects(prefix)
            if item.key.endswith(".json")
        )

    def _create(self, key: str, document: dict[str, object], what: str) -> None:
        self._create_text(key, dumps(document), what)

    def _create_text(self, key: str, text: str, what: str) -> None:
        try:
            self.store.put_bytes(key, text.encode(), _CREATE)
        except ObjectExists:
            raise InputError(f"{what} already exists in vault {self.name!r}") from None

    def _get(self, key: str, what: str) -> bytes:
        try:
            return self.store.get_bytes(key)
        except ObjectNotFound:
            raise InputError(f"there is no {what}") from None

    def _read(self, key: str, what: str) -> object:
        return loads(self._get(key, what), what)


__all__ = ["ROOT", "VaultStore", "VaultUnavailable", "list_vaults", "slot_key"]
