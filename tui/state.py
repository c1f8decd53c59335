"""The console's model: what every view reads, fed by the job feed and the catalog listings.

One `ConsoleState` per app. The app changes it on the UI thread only (from the feed's
messages and the listings' results) and then tells the shown screen what changed; screens
read it and never change it, except to take the selection the app asked them to show.
Imports no Textual.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core import paths
from core.catalog.backup_info import BackupInfo
from core.demo import Demo
from core.jobs import Job, JobState
from core.progress import RateSample
from tui.adapter import BackupRef, DestinationView, HeldKeys, display_url, job_backup_id
from tui.config import ConsoleConfig

#: job kinds whose start or end changes a destination's catalog
CATALOG_CHANGING = frozenset({"backup", "barman-hook", "logical-backup", "delete", "rehydrate"})


@dataclass
class ConsoleState:
    """Jobs, bandwidth, destinations' listings, the demo, and how the display is set."""

    config: ConsoleConfig
    jobs: dict[int, Job] = field(default_factory=dict)
    jobs_loaded: bool = False
    #: bytes per second summed over every job, one sample a second, oldest first
    bandwidth: list[RateSample] = field(default_factory=list)
    #: why the job store cannot be read (None: it can)
    feed_error: str | None = None
    frozen: bool = False
    #: by display label (no credentials)
    destinations: dict[str, DestinationView] = field(default_factory=dict)
    demo: Demo | None = None
    demo_status: str = ""
    demo_failed: bool = False
    demo_job: int | None = None
    #: a job the jobs view selects as soon as it shows it (one the console just started)
    pending_selection: int | None = None
    #: servers' keys the operator unlocked here, by (destination label, server)
    keys: dict[tuple[str, str], HeldKeys] = field(default_factory=dict, repr=False)

    @property
    def read_only(self) -> bool:
        return self.config.read_only

    # ---- jobs ------------------------------------------------------------------------------

    def apply_jobs(self, jobs: list[Job], full: bool) -> set[str]:
        """Take the feed's rows (all of them when `full`); the destinations they changed.

        A backup or delete that started, got its backup ID or ended changed its
        destination's catalog (reported only once the first full read is in).
        """
        changed: set[str] = set()
        if self.jobs_loaded:
            for job in jobs:
                before = self.jobs.get(job.id)
                if (
                    job.kind in CATALOG_CHANGING
                    and job.destination
                    and (
                        before is None
                        or before.state is not job.state
                        or job_backup_id(before) != job_backup_id(job)
                    )
                ):
                    changed.add(job.destination)
        if full:
            self.jobs = {job.id: job for job in jobs}
        else:
            for job in jobs:
                self.jobs[job.id] = job
        self.jobs_loaded = True
        return changed

    def newest_first(self) -> list[Job]:
        return sorted(self.jobs.values(), key=lambda j: j.id, reverse=True)

    def rehydrating(self, label: str, server: str) -> frozenset[str]:
        """The backups of a server an active rehydrate job is bringing back (from the job
        feed the console already has: no store is read)."""
        return frozenset(
            backup_id
            for job in self.jobs.values()
            if job.kind == "rehydrate"
            and not job.final
            and job.destination == label
            and job.server == server
            and (backup_id := job_backup_id(job))
        )

    def job_counts(self) -> dict[JobState, int]:
        counts: dict[JobState, int] = {}
        for job in self.jobs.values():
            counts[job.state] = counts.get(job.state, 0) + 1
        return counts

    # ---- encryption ------------------------------------------------------------------------

    def unlocked(self, ref: BackupRef) -> bool:
        """Whether the operator unlocked the backup's server in this console."""
        return (ref.label, ref.server) in self.keys

    def locked(self, ref: BackupRef) -> bool:
        """An encrypted backup nothing here opens: no keys unlocked for its server, and no
        passphrase or identity in the console's environment (which its jobs inherit)."""
        if not ref.encrypted or self.unlocked(ref):
            return False
        from core.encryption import environment_has_credentials

        return not environment_has_credentials()

    def job_ref(self, job: Job) -> BackupRef | None:
        """The backup a job acted on, as the listing of its destination shows its server:
        marked encrypted when the server's backups are (a failed one may have too few
        objects to tell). None when this console does not list that destination."""
        view = next((v for v in self.destinations.values() if v.label == job.destination), None)
        server = view.server(job.server or "") if view is not None else None
        if view is None or server is None:
            return None
        encrypted = bool(server.encrypted) or any(m.encrypted for m in server.logical)
        info = BackupInfo(job_backup_id(job) or f"of job {job.id}")
        return BackupRef(view.url, view.label, server.name, info, encrypted=encrypted)

    def job_environment(self, label: str, server: str) -> dict[str, str]:
        """What a job for the server gets in its environment: the keys unlocked for it."""
        held = self.keys.get((label, server))
        return held.environment() if held is not None else {}

    # ---- destinations ----------------------------------------------------------------------

    def catalog_urls(self) -> list[tuple[str, bool]]:
        """(URL, is the demo's) for every destination the catalog shows, each once."""
        urls = [(paths.default_destination(), False)]
        urls += [(url, False) for url in self.config.destinations]
        if self.demo is not None:
            urls.append((self.demo.destination, True))
        seen: set[str] = set()
        unique: list[tuple[str, bool]] = []
        for url, demo in urls:
            label = display_url(url)
            if label in seen:
                if demo:
                    unique = [(u, d or display_url(u) == label) for u, d in unique]
                continue
            seen.add(label)
            unique.append((url, demo))
        return unique

    def listing_started(self, url: str, demo: bool) -> str:
        """Mark a destination as being listed again (what it showed stays); its label."""
        label = display_url(url)
        previous = self.destinations.get(label)
        self.destinations[label] = (
            DestinationView(url, label, loading=True, demo=demo)
            if previous is None
            else DestinationView(
                url,
                label,
                previous.servers,
                previous.error,
                loading=True,
                loaded=previous.loaded,
                demo=demo,
            )
        )
        return label
