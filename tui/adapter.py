"""Core values as the console shows them: the one place the console reads them from core.

Errors become one redacted line, URLs lose their credentials, a job's result gives the
backup it made, and destinations become immutable listings (`DestinationView`) that the
catalog and WAL views render. The `load_*` functions block (listings over the network) and
run in thread workers. Destination URLs are kept as given (they may carry credentials) but
only `Location.display()` is ever shown.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from core.catalog.backup_info import BackupInfo
from core.catalog.browse import WalArchive, list_servers, wal_archive
from core.catalog.chains import FULL, kinds, tree_lines
from core.catalog.listing import ABANDONED, BROKEN, DELETING
from core.catalog.manifest import PgvaultManifest
from core.catalog.reader import Catalog
from core.catalog.tier import ARCHIVE, STANDARD
from core.encryption import Credentials, credentials_environment, unlock_server
from core.errors import PgvaultError, own_cause
from core.jobs import Job
from core.logical.attempt import Unfinished, list_unfinished
from core.logical.catalog import LockedFacts, placeholder, read_logical
from core.logical.manifest import LogicalManifest
from core.secrets import redact, without_query
from core.storage import ObjectStore, StoreConfig, open_store
from core.storage.retry import RetryPolicy
from core.urls import Location, parse_location

if TYPE_CHECKING:
    from core.crypto import UnlockedKeys

#: browsing retries briefly: an operator waits on it, a backup does not
BROWSE_RETRY = RetryPolicy(attempts=2, base=0.2, cap=1.0)


def describe_error(exc: BaseException) -> str:
    """One line for an exception: pgvault's own messages as they are (a PermissionError as the
    file, its owner and what to do), others with their type."""
    own = exc if isinstance(exc, PgvaultError) else own_cause(exc)
    text = str(own) if own is not None else f"{type(exc).__name__}: {exc}"
    lines = text.strip().splitlines()
    return redact(lines[0] if lines else type(exc).__name__)


def display_url(url: str) -> str:
    """The URL as the console shows it: without credentials (the raw text if it does not parse)."""
    try:
        return parse_location(url).display()
    except PgvaultError:
        return redact(without_query(url))


def job_backup_id(job: Job) -> str | None:
    """The backup a job made or acted on, once known (noted while the job runs)."""
    return job.details.backup_id or None


@dataclass(frozen=True)
class ServerView:
    name: str
    backups: tuple[BackupInfo, ...] = ()
    error: str | None = None
    unreadable: tuple[str, ...] = ()
    #: bytes each backup occupies in the store (every object under its directory)
    stored: dict[str, int] = field(default_factory=dict, compare=False)
    #: the logical backups (their own series, under logical/), oldest first
    logical: tuple[LogicalManifest, ...] = ()
    #: logical backups without logical.json: running, or what an interrupted one left
    unfinished_logical: tuple[Unfinished, ...] = ()
    #: logical backups whose logical.json cannot be read, with why (listed BROKEN)
    broken_logical: tuple[tuple[str, str], ...] = ()
    #: what an encrypted logical backup's object names and sizes tell without the key
    locked_logical: dict[str, LockedFacts] = field(default_factory=dict, compare=False)
    #: incremental or differential, for each backup naming a parent (pgvault.json says which)
    kinds: dict[str, str] = field(default_factory=dict, compare=False)
    #: the backups in the archive tier (their tier record, read with the listing)
    archived: frozenset[str] = frozenset()
    #: where each backup has second copies (core.catalog.copies): URLs without credentials
    copies: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    #: the backups whose archives are age files (the server's key file opens them)
    encrypted: frozenset[str] = frozenset()

    @property
    def last(self) -> BackupInfo | None:
        return next((b for b in reversed(self.backups) if b.status != BROKEN), None)

    def kind(self, backup_id: str) -> str:
        return self.kinds.get(backup_id, FULL)

    def chain(self, backup_id: str) -> tuple[BackupInfo, ...]:
        """The backups a restore of this one reads, its full backup first (as listed: a
        parent not listed ends it)."""
        by_id = {b.backup_id: b for b in self.backups}
        chain: list[BackupInfo] = []
        info = by_id.get(backup_id)
        while info is not None and info not in chain:
            chain.append(info)
            info = by_id.get(info.parent_backup_id) if info.parent_backup_id else None
        return tuple(reversed(chain))


@dataclass(frozen=True)
class DestinationView:
    """One destination's servers and their backups, as listed at `loaded_at`."""

    url: str  # as given: never shown
    label: str  # display(): no credentials
    servers: tuple[ServerView, ...] = ()
    error: str | None = None
    loading: bool = False
    loaded: bool = False
    demo: bool = False

    def server(self, name: str) -> ServerView | None:
        return next((s for s in self.servers if s.name == name), None)


@dataclass(frozen=True)
class BackupRef:
    """One backup as the views name it: where it is and its backup.info."""

    url: str
    label: str
    server: str
    info: BackupInfo = field(compare=False)
    stored: int | None = None
    #: a logical backup's manifest (`info` then holds what a row shows of it)
    logical: LogicalManifest | None = field(default=None, compare=False)
    #: full, incremental or differential (a logical backup: full)
    kind: str = field(default=FULL, compare=False)
    #: where the row stands in its chain's tree: `├─ `, `│  └─ ` ('' for a full backup)
    tree: str = field(default="", compare=False)
    #: standard, archive, or rehydrating (archived, and a rehydrate job for it is active)
    tier: str = field(default=STANDARD, compare=False)
    #: where it has second copies, as shown (display URLs)
    copies: tuple[str, ...] = field(default=(), compare=False)
    #: sealed as age files: its contents and its restore need the server's key
    encrypted: bool = field(default=False, compare=False)


def _moment(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def logical_info(manifest: LogicalManifest, facts: LockedFacts | None = None) -> BackupInfo:
    """What a catalog row shows of a logical backup, in a physical one's terms: its ID, name,
    status (DONE, or LOCKED without the key), times, compression and data size."""
    compression = manifest.compression
    if facts is not None and facts.compression_known:
        compression = facts.compression  # a LOCKED one's, from its objects' names
    return BackupInfo(
        manifest.backup_id,
        status=manifest.status,
        backup_name=manifest.name,
        begin_time=_moment(manifest.started),
        end_time=_moment(manifest.finished),
        compression=compression,
        cluster_size=manifest.data_size if manifest.databases else None,
        version=manifest.server_version or None,
    )


#: the console's word for an archived backup a rehydrate job is bringing back
REHYDRATING = "rehydrating"


def tier_of(server: ServerView, backup_id: str, rehydrating: Collection[str]) -> str:
    if backup_id not in server.archived:
        return STANDARD
    return REHYDRATING if backup_id in rehydrating else ARCHIVE


def copies_of(server: ServerView, backup_id: str) -> tuple[str, ...]:
    """Where a backup has copies, as the console shows a URL."""
    return tuple(display_url(url) for url in server.copies.get(backup_id, ()))


def server_refs(
    view: DestinationView, server: ServerView, rehydrating: Collection[str] = ()
) -> list[BackupRef]:
    """Every backup of the server, physical and logical, newest first (IDs sort by time; a
    logical ID is a physical one's with an L), each incremental under its parent.
    `rehydrating`: the backups an active rehydrate job is bringing back."""
    refs = {
        info.backup_id: BackupRef(
            view.url,
            view.label,
            server.name,
            info,
            server.stored.get(info.backup_id),
            kind=server.kind(info.backup_id),
            tier=tier_of(server, info.backup_id, rehydrating),
            copies=copies_of(server, info.backup_id),
            encrypted=info.backup_id in server.encrypted,
        )
        for info in server.backups
    }
    refs.update((r.info.backup_id, r) for r in logical_refs(view, server))
    pairs = [(i, r.info.parent_backup_id if r.logical is None else None) for i, r in refs.items()]
    return [replace(refs[i], tree=prefix) for i, prefix in tree_lines(pairs, newest_first=True)]


def logical_refs(view: DestinationView, server: ServerView) -> list[BackupRef]:
    """The server's logical backups as rows: finished (LOCKED ones by what their objects
    tell), BROKEN, and unfinished (no logical.json yet)."""
    where = (view.url, view.label, server.name)
    refs = []
    for m in server.logical:
        facts = server.locked_logical.get(m.backup_id)
        size = m.stored_size if facts is None else facts.stored_size
        refs.append(
            BackupRef(
                *where,
                logical_info(m, facts),
                size,
                logical=m,
                copies=copies_of(server, m.backup_id),
                encrypted=m.encrypted,
            )
        )
    refs += [
        BackupRef(
            *where,
            BackupInfo(backup_id, status=BROKEN, error=why),
            None,
            logical=placeholder(server.name, backup_id, BROKEN),
        )
        for backup_id, why in server.broken_logical
    ]
    refs += [
        BackupRef(
            *where,
            BackupInfo(u.backup_id, status=u.status, error=u.reason),
            u.size,
            logical=placeholder(server.name, u.backup_id, u.status),
        )
        for u in server.unfinished_logical
    ]
    return refs


def open_for_browsing(url: str) -> ObjectStore:
    location: Location = parse_location(url)
    return open_store(location, StoreConfig(retry=BROWSE_RETRY))


def stored_sizes(catalog: Catalog, backups: Sequence[BackupInfo]) -> dict[str, int]:
    """Bytes under each backup's directory (archives, manifests, backup.info), from the
    catalog's one recursive listing: backup.info's `size` is written by neither barman-cloud's
    cloud backups nor pgvault."""
    objects = catalog.objects()
    return {b.backup_id: sum(o.size for o in objects.get(b.backup_id, ())) for b in backups}


def shown_backups(catalog: Catalog, backups: Sequence[BackupInfo]) -> tuple[BackupInfo, ...]:
    """The backups as the catalog view lists them: a STARTED backup whose owner is gone as
    ABANDONED, one being deleted as DELETING, and each unreadable backup.info as BROKEN (its
    error the reason), in backup ID order."""
    shown = [_shown(catalog, info) for info in backups]
    shown += [
        BackupInfo(backup_id, status=BROKEN, error=why) for backup_id, why in catalog.broken.items()
    ]
    return tuple(sorted(shown, key=lambda i: i.backup_id))


def _shown(catalog: Catalog, info: BackupInfo) -> BackupInfo:
    verdict = catalog.owner(info)
    if verdict is not None and verdict.abandoned:
        return info.with_changes(status=ABANDONED, error=verdict.reason)
    return info.with_changes(status=DELETING) if info.deleting else info


def load_destination(url: str, demo: bool = False) -> DestinationView:
    """List a destination's servers and every server's backups (blocks: run in a thread)."""
    label = display_url(url)
    try:
        with open_for_browsing(url) as store:
            servers = []
            for name in list_servers(store):
                catalog = Catalog(store, name)
                try:
                    backups = tuple(catalog.backups())
                    logical = read_logical(store, name)
                    servers.append(
                        ServerView(
                            name,
                            shown_backups(catalog, backups),
                            unreadable=tuple(catalog.unreadable),
                            stored=stored_sizes(catalog, backups),
                            logical=logical.backups,
                            unfinished_logical=list_unfinished(store, name),
                            broken_logical=logical.broken,
                            locked_logical=dict(logical.locked),
                            kinds=kinds(catalog, backups),
                            # from the same recursive listing: one GET per archived backup
                            archived=frozenset(catalog.archived()),
                            copies=catalog.copies(),
                            encrypted=frozenset(catalog.encrypted()),
                        )
                    )
                except Exception as exc:
                    servers.append(ServerView(name, error=describe_error(exc)))
    except Exception as exc:
        return DestinationView(url, label, error=describe_error(exc), loaded=True, demo=demo)
    return DestinationView(url, label, tuple(servers), loaded=True, demo=demo)


def list_server(url: str, server: str) -> tuple[BackupInfo, ...]:
    """One server's backups as the catalog view lists them (blocks: run in a thread)."""
    with open_for_browsing(url) as store:
        catalog = Catalog(store, server)
        return shown_backups(catalog, tuple(catalog.backups()))


@dataclass(frozen=True)
class HeldKeys:
    """A server's keys the operator unlocked in this console: never shown, never stored."""

    credentials: Credentials = field(repr=False)
    keys: UnlockedKeys = field(repr=False)

    def environment(self) -> dict[str, str]:
        """What a job started for the server gets in its process environment."""
        return credentials_environment(self.credentials, self.keys)


def unlock_keys(url: str, server: str, passphrase: str, identity_file: str) -> HeldKeys:
    """Open the server's key file with a passphrase or an identity file (blocks: one scrypt);
    DecryptionFailed or InputError says why not."""
    from core.crypto import Passphrase, read_identity_file

    identities = read_identity_file(Path(identity_file).expanduser()) if identity_file else ()
    credentials = Credentials(Passphrase(passphrase) if passphrase else None, identities)
    with open_for_browsing(url) as store:
        return HeldKeys(credentials, unlock_server(store, server, credentials))


def load_manifest(url: str, server: str, backup_id: str) -> PgvaultManifest | None:
    """pgvault.json of one backup (None for a backup barman-cloud wrote)."""
    with open_for_browsing(url) as store:
        return Catalog(store, server).pgvault_manifest(backup_id)


def load_wal(url: str, server: str, backups: Sequence[BackupInfo]) -> WalArchive:
    """The server's WAL archive: stretches, gaps and every backup's coverage."""
    with open_for_browsing(url) as store:
        return wal_archive(store, server, backups)
