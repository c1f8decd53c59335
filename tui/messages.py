"""The console's messages: what its threads found, and what screens ask the app to do.

The job feed and the demo's start post from threads (`post_message` is thread-safe); screens
and the command palette post requests that bubble up to the app, which does them.
"""

from __future__ import annotations

from typing import Any, Protocol

from textual.message import Message

from core.jobs import Job
from core.progress import RateSample
from tui.adapter import BackupRef


class JobsChanged(Message):
    """Jobs whose row changed since the last poll (every job when `full`)."""

    def __init__(self, jobs: list[Job], full: bool, rev: int) -> None:
        super().__init__()
        self.jobs = jobs
        self.full = full
        self.rev = rev


class BandwidthSampled(Message):
    """Bytes per second summed over every job, one sample per second, oldest first."""

    def __init__(self, samples: list[RateSample]) -> None:
        super().__init__()
        self.samples = samples


class FeedStatus(Message):
    """The job store answered (error None) or could not be read (a one-line error)."""

    def __init__(self, error: str | None) -> None:
        super().__init__()
        self.error = error


class DemoProgress(Message):
    """A step of the demo's start-up, or its end (done) or failure (error)."""

    def __init__(self, text: str, done: bool = False, error: bool = False) -> None:
        super().__init__()
        self.text = text
        self.done = done
        self.error = error


# ---- what screens and the palette ask the app to do ------------------------------------------


class JobRequest(Message):
    """Something the operator asked of one job (the app does it: tui.actions)."""

    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job


class OpenJob(JobRequest):
    """Show the job in full, on the jobs view."""


class PauseJob(JobRequest):
    """Ask the job to pause."""


class ResumeJob(JobRequest):
    """Ask a paused job to go on."""


class CancelJob(JobRequest):
    """Cancel the job, once the operator confirms."""


class RetryJob(JobRequest):
    """Resume a failed backup in a new job."""


class BackupRequest(Message):
    """Something the operator asked of one backup in a catalog."""

    def __init__(self, ref: BackupRef) -> None:
        super().__init__()
        self.ref = ref


class OpenBackup(BackupRequest):
    """Show what the backup holds, on the catalog view."""


class RestoreBackup(BackupRequest):
    """Open the restore form on the backup."""


class VerifyBackup(BackupRequest):
    """Verify the backup in a job, once the operator confirms."""


class DeleteBackup(BackupRequest):
    """Delete the backup in a job, once the operator confirms."""


class UnlockBackup(BackupRequest):
    """Ask for what opens the encrypted backup's server key file."""


class ProtectionRequest(Message):
    """Something the operator asked of one backup instance of a vault."""

    def __init__(self, vault: str, instance: str) -> None:
        super().__init__()
        self.vault = vault
        self.instance = instance


class StopProtection(ProtectionRequest):
    """Stop protecting the instance (the agent skips it), once the operator confirms."""


class ResumeProtection(ProtectionRequest):
    """Protect the instance again."""


class RepairWal(Message):
    """Archive again the missing WAL of a server from its pg_wal (a form asks where)."""

    def __init__(self, url: str, label: str, server: str) -> None:
        super().__init__()
        self.url = url
        self.label = label
        self.server = server


class Asker(Protocol):
    """A screen that asks the app for something (a MessagePump with its app)."""

    @property
    def app(self) -> Any: ...
    def post_message(self, message: Message) -> bool: ...


def ask_now(sender: Asker, request: Message) -> None:
    """Have the app do `request` now, not once the message has bubbled up to it.

    A form opened by a key (`r`, `u`, `A`, `enter` on a locked backup) must be pushed while
    the App still reads that key: posted, the request reached the app after the keys typed
    with it in the same read (tmux, SSH, a fast typist), which went to the view behind the
    form. Pushed at once, they reach the form, which keeps them for its first field
    (FormScreen.focus_first)."""
    handler = getattr(sender.app, request.handler_name, None)
    if callable(handler):
        handler(request)
    else:
        sender.post_message(request)
