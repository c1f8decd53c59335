"""Connection-level settings of a store, from the command line (barman-cloud's flags)."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import InputError
from core.storage.retry import RetryPolicy

S3_ENCRYPTION = ("AES256", "aws:kms")
#: the S3 Object Lock mode pgvault writes: GOVERNANCE, which an account holding
#: s3:BypassGovernanceRetention can still lift after a mistake; COMPLIANCE cannot be lifted
#: by anyone before it ends, and moto does not even enforce that (it lets it be shortened)
OBJECT_LOCK_MODE = "GOVERNANCE"


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
    #: a restore's cap (bytes/s) on what it downloads; the others cap what they upload
    max_download_bandwidth: int | None = None
    azure_max_block_size: int | None = None
    azure_max_single_put_size: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: S3 Object Lock: every object written is retained this many days (OBJECT_LOCK_MODE)
    object_lock_days: int | None = None


def check_s3_encryption(config: StoreConfig) -> None:
    """-e and --sse-kms-key-id as S3 takes them (both S3 backends check them here)."""
    if config.sse and config.sse not in S3_ENCRYPTION:
        raise InputError(f"-e/--encryption must be one of {', '.join(S3_ENCRYPTION)}")
    if config.sse_kms_key_id and config.sse != "aws:kms":
        raise InputError("--sse-kms-key-id needs -e aws:kms")
