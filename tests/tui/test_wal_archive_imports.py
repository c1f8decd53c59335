"""archive_command's per-segment call loads only what archiving to S3 needs.

PostgreSQL starts one process per WAL file, so each import is paid per segment: no UI
toolkit, no other provider's SDK, no boto3 (core.storage.s3_http serves the call), no
`cryptography` for a server without a key file, and only the codec the flags ask for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.destinations import TestDestination, make_destination
from tests.support.emulators import Emulator
from tests.support.wal import synthetic_segment

NAME = "000000010000000000000003"
HEAVY = (
    "textual",
    "rich",
    "cryptography",
    "azure",
    "google",
    "boto3",
    "botocore",
    "s3transfer",
    "zstandard",
    "lz4",
    "cramjam",
)
PROBE = """
import json, sys
from tui.cli import main
code = main(['--batch', 'wal-archive', *{argv!r}])
loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))
print(json.dumps([code, loaded]))
"""


def _archive(dest: TestDestination, wal: str, *flags: str) -> tuple[int, list[str]]:
    argv = [*dest.cli_args, *flags, dest.url, "pg1", wal]
    probe = PROBE.format(argv=argv, heavy=HEAVY)
    env = {**os.environ, **dest.env}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=False
    )
    assert result.stdout, result.stderr
    code, loaded = json.loads(result.stdout.strip().splitlines()[-1])
    return code, loaded


@pytest.mark.parametrize(("flags", "allowed"), [((), []), (("--zstd",), ["zstandard"])])
def test_archiving_one_segment_to_s3_loads_nothing_it_does_not_use(
    emulators: dict[str, Emulator], tmp_path: Path, flags: tuple[str, ...], allowed: list[str]
) -> None:
    dest = make_destination("s3", emulators)
    wal = tmp_path / NAME
    wal.write_bytes(synthetic_segment(NAME))
    assert _archive(dest, str(wal), *flags) == (0, allowed)
    with dest.store() as store:
        keys = [info.key for info in store.list_objects("pg1/wals/")]
    suffix = ".zst" if flags else ""
    assert keys == [f"pg1/wals/0000000100000000/{NAME}{suffix}"]
    # Archived again: found with the same content (nothing compressed), still without boto3.
    code, loaded = _archive(dest, str(wal), *flags)
    assert code == 0
    assert set(loaded) <= set(allowed)
