"""Messages the console's background threads post to the UI (thread-safe `post_message`)."""

from __future__ import annotations

from textual.message import Message

from core.jobs import Job
from core.progress import RateSample


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
