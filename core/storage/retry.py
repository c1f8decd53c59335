"""Retries with exponential backoff and full jitter, for errors worth retrying only."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
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
        return random.uniform(0, min(self.cap, self.base * (2 ** (failures - 1))))

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
                if failures >= self.attempts:
                    raise
                pause = self.delay(failures)
                log.info("retrying %s in %.2fs after: %s", what, pause, exc)
                sleep(pause)


NO_RETRY = RetryPolicy(attempts=1)
