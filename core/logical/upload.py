"""The uploads of a running pg_dump's files: finished ones whole, growing ones followed.

A data file that pg_dump is still writing is uploaded as it grows (followed), so that the
upload of a big table overlaps its dump instead of starting when pg_dump closes the file;
the object is completed only once the file is finished (no process of pg_dump's group
holds it, core.logical.staging) and read to its end. Followers have their own threads:
a follower waits for pg_dump, which may be stopped until finished files are uploaded.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from core.crypto import EncryptingWriter, X25519Recipient
from core.errors import OperationFailed
from core.logical.manifest import DumpFile
from core.progress import Reporter
from core.storage import ObjectStore, PutOptions

READ_SIZE = 1024 * 1024
#: how often a follower looks for more bytes while pg_dump writes its file
FOLLOW_POLL = 0.2


class Uploads:
    """Uploads files with `jobs` threads (and follows growing ones with `jobs` more)."""

    def __init__(
        self,
        store: ObjectStore,
        where: tuple[str, str],  # (staging directory, object prefix)
        reporter: Reporter,
        sealing: tuple[X25519Recipient | None, PutOptions, int],  # recipient, options, jobs
    ) -> None:
        self.store = store
        self.directory, self.prefix = where
        self.reporter = reporter
        self.recipient, self.options, jobs = sealing
        self.pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="pgvault-logical")
        self.followers = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="pgvault-follow")
        self.futures: dict[str, Future[DumpFile]] = {}
        self._finished: dict[str, threading.Event] = {}  # followed files: set once closed
        self._read: dict[str, int] = {}  # followed files: bytes uploaded so far
        self._stop = threading.Event()

    def submit(self, name: str) -> None:
        """Upload a finished file; a followed one is told that it is finished."""
        if name in self._finished:
            self._finished[name].set()
        else:
            self.futures[name] = self.pool.submit(self.one, name)

    def follow(self, name: str) -> None:
        """Upload a file pg_dump is writing as it grows; submit() it once finished."""
        self._finished[name] = threading.Event()
        self._read[name] = 0
        self.futures[name] = self.followers.submit(self._follow, name)

    def settled(self) -> set[str]:
        """Names that need nothing more from the poll: all but followed files still written."""
        return {n for n in self.futures if n not in self._finished or self._finished[n].is_set()}

    def finish_all(self) -> None:
        """pg_dump exited 0: every followed file is complete."""
        for event in self._finished.values():
            event.set()

    def one(self, name: str) -> DumpFile:
        return self._upload(name, None)

    def _follow(self, name: str) -> DumpFile:
        return self._upload(name, self._finished[name])

    def _upload(self, name: str, finished: threading.Event | None) -> DumpFile:
        path = os.path.join(self.directory, name)
        digest = hashlib.sha256()  # of what pg_dump wrote: restore and verify check it
        with (
            open(path, "rb") as src,
            self.store.open_writer(self.prefix + name, self.options) as writer,
        ):
            sink = writer if self.recipient is None else EncryptingWriter(writer, [self.recipient])
            while True:
                # Seen before reading: once finished, reading to the end gets every byte.
                complete = finished is None or finished.is_set()
                while chunk := src.read(READ_SIZE):
                    sink.write(chunk)
                    digest.update(chunk)
                    self.reporter.advance(len(chunk))
                    if finished is not None:
                        self._read[name] += len(chunk)
                if complete:
                    break
                if finished is not None:
                    finished.wait(FOLLOW_POLL)
                if self._stop.is_set():  # pg_dump failed or was cancelled: abort the object
                    raise OperationFailed(f"upload of {name} stopped")
            if isinstance(sink, EncryptingWriter):
                sink.close()  # the last chunk sealed before the upload completes
        self.reporter.advance(files=1)
        os.unlink(path)
        return DumpFile(name, writer.bytes_written, digest.hexdigest())

    def waiting_bytes(self) -> int:
        """Bytes of finished files not uploaded yet (files being written are not counted)."""
        total = 0
        for name, future in self.futures.items():
            event = self._finished.get(name)
            if future.done() or (event is not None and not event.is_set()):
                continue
            try:
                total += os.stat(os.path.join(self.directory, name)).st_size
            except OSError:
                continue
            total -= self._read.get(name, 0)
        return total

    def raise_failed(self) -> None:
        for future in self.futures.values():
            if future.done() and future.exception() is not None:
                future.result()

    def results(self) -> list[DumpFile]:
        return [f.result() for f in self.futures.values()]

    def close(self) -> None:
        self._stop.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.followers.shutdown(wait=True, cancel_futures=True)
