"""A copy's target is never its source, however the same place is spelled (exit 3).

The same local directory through `..` or a symlink, and the same S3 bucket and prefix with
another query parameter, another slash or its endpoint given by --endpoint-url: each is
refused before anything is read or written, and the source's copies record stays unwritten.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tests.support.catalog import object_keys, put_backup
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination

SERVER = "pg1"
ENDPOINT = "http://127.0.0.1:9"  # never reached: the refusal comes first


def test_the_same_place_spelled_otherwise_is_refused(
    make_dest: Callable[..., TestDestination], tmp_path: Path
) -> None:
    local, other = make_dest("file"), make_dest("file")
    put_backup(local, "20260102T000000", begin="000000010000000000000002")
    directory = Path(local.url.removeprefix("file://"))
    link = tmp_path / "link"
    os.symlink(directory, link)
    name = directory.name
    s3 = f"s3://bucket/some/prefix?AWS_ENDPOINT={ENDPOINT}"
    cases = [
        ([local.url], f"{local.url}/../{name}"),
        ([local.url], f"file://{link}"),
        ([f"file://{link}"], f"{local.url}/"),
        ([s3], f"s3://bucket/some//prefix/?AWS_ENDPOINT={ENDPOINT}/&AWS_REGION=us-east-1"),
        ([s3, "--endpoint-url", ENDPOINT], s3.replace(ENDPOINT, ENDPOINT.upper())),
        (["s3://bucket/some/prefix", "--endpoint-url", ENDPOINT], s3),
    ]
    for source, target in cases:
        result = pgvault("copy", *source, SERVER, "latest", "--to", target)
        stderr = result.stderr.strip()
        assert result.returncode == 3, (source, target, result.returncode, stderr)
        assert "target is its source" in stderr and len(stderr.splitlines()) == 1, stderr
    assert not any(key.endswith("copies.json") for key in object_keys(local))

    elsewhere = pgvault("copy", local.url, SERVER, "latest", "--to", f"{other.url}/sub")
    assert "target is its source" not in elsewhere.stderr
