"""What every cloud SDK client is set up with: pgvault's timeouts and secrets from the
environment. Retries are the store's (core.storage.retry): each client turns its own off."""

from __future__ import annotations

import os
from dataclasses import dataclass

from core.secrets import register_secret
from core.storage.config import StoreConfig

CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60


@dataclass(frozen=True)
class Timeouts:
    """Seconds to connect, and to wait for each read of an answer (--read-timeout)."""

    connect: int
    read: int

    @classmethod
    def of(cls, config: StoreConfig) -> Timeouts:
        return cls(CONNECT_TIMEOUT, config.read_timeout or READ_TIMEOUT)


def env_secret(name: str) -> str | None:
    """A secret from the environment, registered so that it is never shown."""
    value = os.environ.get(name)
    if value:
        register_secret(value)
    return value
