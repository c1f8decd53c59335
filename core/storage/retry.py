"""Retries with exponential backoff and full jitter, for errors worth retrying only."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from core.errors import EndpointUnreachable, TransientError

T = TypeVar("T")
log = logging.getLogger("pgvault.storage")

RETRYABLE: tuple[type[Exception], ...] = (TransientError, EndpointUnreachable)


@dataclass(frozen=True)
class RetryPolicy:
    """attempts counts the first try; delays grow base*2^n, capped, with full jitter."""

    attempts: int = 6
    base: float = 0.25
    cap: float = 20.0

    def delay(self, failures: int) -> float:
        jitter = random.uniform(0, min(self.cap, self.base * (2 ** (failures - 1))))  # noqa: S311 - backoff jitter, not a secret
        return jitter

    def call(
        self,
        fn: Callable[[], T],
        what: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> T:
        """Run fn, retrying transient failures; the last error propagates unchanged."""
        failures = 0
        while True:
            try:
                return fn()
            except RETRYABLE as exc:
                failures += 1
                self.wait(failures, what, exc, sleep)

    def stream(
        self,
        make: Callable[[], Iterator[T]],
        what: str,
        identity: Callable[[T], Hashable],
        sleep: Callable[[float], None] = time.sleep,
    ) -> Iterator[T]:
        """Iterate make(), starting it again after a transient failure, never yielding an
        item (by identity) twice: a listing that breaks on its tenth page goes on."""
        seen: set[Hashable] = set()
        failures = 0
        while True:
            try:
                for item in make():
                    key = identity(item)
                    if key not in seen:
                        seen.add(key)
                        yield item
                return
            except RETRYABLE as exc:
                failures += 1
                self.wait(failures, what, exc, sleep)

    def wait(
        self,
        failures: int,
        what: str,
        exc: Exception,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Sleep before the next attempt, or re-raise when the attempts are spent."""
        if failures >= self.attempts:
            raise exc
        pause = self.delay(failures)
        log.info("retrying %s in %.2fs after: %s", what, pause, exc)
        sleep(pause)


NO_RETRY = RetryPolicy(attempts=1)
