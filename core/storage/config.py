"""Connection-level settings of a store, from the command line (barman-cloud's flags)."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.storage.retry import RetryPolicy


@dataclass(frozen=True)
class StoreConfig:
    """Connection-level settings from the command line (barman-cloud's flags)."""

    endpoint_url: str | None = None
    aws_profile: str | None = None
    read_timeout: int | None = None
    addressing_style: str | None = None
    azure_credential: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = field(default=None, repr=False)
    encryption_scope: str | None = None
    kms_key_name: str | None = None
    min_chunk_size: int | None = None
    jobs: int = 2
    max_bandwidth: int | None = None
    azure_max_block_size: int | None = None
    azure_max_single_put_size: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
