"""A second copy's destination that does not exist: one line naming it, exit 1, no traceback.

On moto's S3, Azurite and fake-gcs-server a bucket/container never created, and locally a
directory under a regular file (a directory is otherwise created on first use): `copy --to`
(with and without -t) and `wal-archive --secondary-destination` each fail with exit 1, as
barman-cloud does for a missing bucket, in one line that names the bucket, container or path.
Nothing is written to the source's copies record.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.catalog.copies import COPIES_FILE
from tests.support.catalog import put_backup
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.wal import WalSample

SERVER = "pg1"
WAL = "000000010000000000000002"


def _url(dest: TestDestination) -> str:
    """The destination as a --to URL: S3 names its endpoint (moto) in the query string."""
    if dest.provider == "s3":
        return f"{dest.url}?AWS_ENDPOINT={dest.config.endpoint_url}"
    return dest.url


def _named(dest: TestDestination) -> str:
    """What the message must name: the bucket/container, or the path that cannot be one."""
    return dest.url.removeprefix("file://") if dest.provider == "file" else dest.bucket


def _one_line_exit_1(result: object, dest: TestDestination) -> None:
    stderr = result.stderr.strip()  # type: ignore[attr-defined]
    assert result.returncode == 1, (result.returncode, stderr)  # type: ignore[attr-defined]
    assert "Traceback" not in stderr, stderr
    assert len(stderr.splitlines()) == 1, stderr
    assert _named(dest) in stderr, stderr


@pytest.mark.parametrize("provider", ["s3", "azure", "gcs", "file"])
def test_a_missing_copy_target_or_secondary_is_named_with_exit_1(
    provider: str, make_dest: Callable[..., TestDestination], wal_sample: WalSample
) -> None:
    source = make_dest("file")
    missing = make_dest(provider, create=False)
    put_backup(source, "20260102T000000", begin=WAL, end=WAL)
    to = _url(missing)

    for extra in (["-t"], []):
        copied = pgvault("copy", *extra, source.url, SERVER, "latest", "--to", to)
        _one_line_exit_1(copied, missing)
    with source.store() as store:
        assert not store.exists(f"{SERVER}/{COPIES_FILE}")

    segment = wal_sample.path(wal_sample.segments[0])
    for extra in (["-t"], [segment]):
        flags = ["-t"] if extra == ["-t"] else []
        args = [*flags, "--secondary-destination", to, source.url, SERVER]
        archived = pgvault("wal-archive", *args, *([] if flags else extra))
        _one_line_exit_1(archived, missing)
