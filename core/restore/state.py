"""The one state object every phase of a restore reads and adds to."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

from core.progress import Reporter
from core.restore.chain import ChainWritten
from core.restore.extract import RestoreState, Syncer
from core.restore.plan import BackupPlan, Paths
from core.restore.request import RestoreRequest
from core.restore.rerun import Claim
from core.storage import ObjectStore


@dataclass
class RestoreRun:
    """One restore under way: its request and plan, what it wrote, what it found."""

    request: RestoreRequest
    paths: Paths
    plan: BackupPlan
    reporter: Reporter
    store: ObjectStore
    syncer: Syncer
    files: RestoreState  # what the archives' extractors share
    as_root: bool
    started: float = field(default_factory=time.monotonic)
    abort: threading.Event = field(default_factory=threading.Event)
    created: list[str] = field(default_factory=list)  # directories created (removed on failure)
    emptied: list[str] = field(default_factory=list)  # existing empty directories written into
    wal_files: list[str] = field(default_factory=list)  # written in an existing restore dir
    downloaded: int = 0
    verified: list[str] = field(default_factory=list)
    not_verified: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    command_checked: bool = False  # restore_command was run as the data directory's owner
    settled_owner: tuple[int, int] | None = None  # the data directory's (settle_owner)
    restore_command: str = ""  # (configure_recovery)
    credentials_file: str | None = None
    kept_bytes: int = 0  # a delta restore's files already in place (core.restore.delta)
    archives_skipped: int = 0  # a delta restore's parts not read at all (core.restore.delta_fetch)
    archives_by_range: int = 0  # a delta restore's plain parts read by ranges
    chain_written: ChainWritten | None = None  # a chain restore's (core.restore.chain_fetch)
    marker: Claim | None = None  # the recovery directory's, held locked (core.restore.rerun)

    @classmethod
    def start(
        cls,
        request: RestoreRequest,
        paths: Paths,
        plan: BackupPlan,
        reporter: Reporter,
        store: ObjectStore,
        started: float,
    ) -> RestoreRun:
        """The state of a planned restore, before anything is written."""
        as_root = os.geteuid() == 0
        syncer = Syncer(request.sync)
        files = RestoreState(
            records=plan.records,
            algorithm=plan.algorithm,
            as_root=as_root,
            tablespace_oids=frozenset(str(t.oid) for t in plan.info.tablespaces or ()),
            syncer=syncer,
            advance_files=lambda n: reporter.advance(0, files=n),
        )
        return cls(request, paths, plan, reporter, store, syncer, files, as_root, started)

    @property
    def pgdata(self) -> str:
        return self.paths.recovery_dir

    @property
    def owner(self) -> tuple[int, int]:
        """The restored data directory's owner (uid, gid), once settle_owner has run."""
        if self.settled_owner is None:
            raise RuntimeError("the restored data directory's owner is not known yet")
        return self.settled_owner

    @property
    def file_owner(self) -> tuple[int, int] | None:
        """Who the files written after extraction belong to: None unless running as root."""
        return self.owner if self.as_root else None

    def own(self, path: str) -> None:
        """Give a path the data directory's owner (as root; otherwise it is ours already)."""
        if self.as_root:
            os.chown(path, self.owner[0], self.owner[1], follow_symlinks=False)


__all__ = ["RestoreRun"]
