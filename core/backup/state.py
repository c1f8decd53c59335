"""The values a backup carries from phase to phase.

`BackupJob` is what the run was given and decided before it connected; `BackupState` is the
one backup from its claimed ID on, which every phase reads and the failure path undoes. The
phases hand each other frozen values as they become known: `BackupMode` (pg_backup_start),
`FilePlan` (what to copy), `Copy` (the archives being written), then pg_backup_stop's answer.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from core.archives import ArchiveSetWriter
from core.backup.request import BackupRequest
from core.backup.resume import ResumePlan, StoredBackup
from core.catalog.backup_info import BackupInfo, serialize
from core.catalog.layout import PGVAULT_MANIFEST, ServerLayout
from core.catalog.manifest import PgvaultManifest, checksum_name, dump_pgvault
from core.codecs import Codec, get_codec
from core.crypto import X25519Recipient
from core.encryption import backup_recipient, seal
from core.postgres.connection import BackupSession, BackupStart, ServerFacts, Session
from core.postgres.pgdata import Tree
from core.progress import Reporter
from core.storage import ObjectStore, PutOptions


@dataclass(frozen=True)
class BackupJob:
    """What the run was given, and what it decided from that: fixed for its whole life."""

    request: BackupRequest
    reporter: Reporter
    store: ObjectStore
    layout: ServerLayout
    codec: Codec | None
    algorithm: str  # the files' checksum, as the manifests name it
    options: PutOptions  # every object the backup writes carries the request's tags
    threads: int  # compression threads
    started_at: float  # time.monotonic()
    recipient: X25519Recipient | None = None  # the server's key file: every object sealed to it

    @classmethod
    def create(cls, request: BackupRequest, reporter: Reporter, store: ObjectStore) -> BackupJob:
        return cls(
            request=request,
            reporter=reporter,
            store=store,
            layout=ServerLayout(request.server),
            codec=get_codec(request.compression),
            algorithm=checksum_name(request.checksum_algorithm),
            options=PutOptions(tags=request.tags),
            threads=request.threads or os.cpu_count() or 1,
            started_at=time.monotonic(),
            recipient=backup_recipient(store, request.server),
        )

    @property
    def compression(self) -> str | None:
        return self.codec.name if self.codec else None


@dataclass
class BackupState:
    """One backup from its claimed ID on: what the phases read, and what a failure undoes."""

    job: BackupJob
    session: Session
    facts: ServerFacts
    backup_id: str
    resuming: bool  # continuing a failed backup of this ID (BackupRequest.resume)
    info: BackupInfo  # backup.info as last decided; put_info() stores it
    manifest: PgvaultManifest  # pgvault.json likewise; put_manifest() stores it
    phase: str  # the current phase, named in the FAILED reason
    backup: BackupSession | None = None  # from pg_backup_start on; checked at every checkpoint
    writers: list[ArchiveSetWriter] = field(default_factory=list)  # aborted on failure

    @property
    def stored(self) -> StoredBackup:
        return StoredBackup(self.job.store, self.job.layout, self.backup_id, self.job.recipient)

    def enter(self, phase: str) -> None:
        self.phase = phase
        self.job.reporter.phase(phase)

    def checkpoint(self) -> None:
        """Pause or cancel here; a lost backup session fails the backup here too."""
        self.job.reporter.checkpoint()
        if self.backup is not None:
            self.backup.raise_if_lost()

    def log(self, message: str, level: int = logging.INFO) -> None:
        self.job.reporter.log(message, level)

    def put_info(self) -> None:
        self.job.store.put_bytes(
            self.job.layout.backup_info(self.backup_id), serialize(self.info), self.job.options
        )

    def put_manifest(self) -> None:
        self.job.store.put_bytes(
            self.job.layout.backup_file(self.backup_id, PGVAULT_MANIFEST),
            seal(dump_pgvault(self.manifest), self.job.recipient),
            self.job.options,
        )


@dataclass(frozen=True)
class BackupMode:
    """PostgreSQL in backup mode: the session that holds it, and pg_backup_start's answer."""

    session: BackupSession
    start: BackupStart


@dataclass(frozen=True)
class ExternalFile:
    """A configuration file outside PGDATA, stored at the data archive's root."""

    kind: str  # config_file, hba_file or ident_file
    path: str
    optional: bool  # a missing file is skipped rather than failing the backup


@dataclass(frozen=True)
class FilePlan:
    """What the stream phase copies, and the totals progress counts against."""

    tablespaces: tuple[Tree, ...]  # in the order of ServerFacts.tablespaces
    data: Tree
    external: tuple[ExternalFile, ...]
    bytes_total: int
    files_total: int
    kept: ResumePlan | None = None  # a resumed backup: the failed run's parts it keeps

    def first_part(self, archive_set: str) -> int:
        """The number of a set's first new part: after the parts kept, if any."""
        return self.kept.next_part(archive_set) if self.kept else 0


@dataclass(frozen=True)
class Copy:
    """The archives being written: the data set stays open for backup_label."""

    data: ArchiveSetWriter
    started: float  # time.monotonic() when copying began
    bytes_total: int
