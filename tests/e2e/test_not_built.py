"""README's "Not built yet" table: every flag in it is refused openly, exit 3, one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import pgvault

WAL = "000000010000000000000001"


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (
            [
                *("backup", "--snapshot-instance", "vm1", "--snapshot-disk", "d1"),
                *("--aws-snapshot-lock-mode", "governance", "{dest}", "pg1"),
            ],
            {},
            "--aws-snapshot-lock-mode",
        ),
        (["backup", "--sse-customer-key", "k", "{dest}", "pg1"], {}, "--sse-customer-key"),
        (["wal-archive", "--sse-customer-key", "k", "{dest}", "pg1", "{wal}"], {}, "SSE-C"),
        (["wal-restore", "--sse-customer-key", "k", "{dest}", "pg1", WAL, "{wal}"], {}, "SSE-C"),
        (["restore", "--sse-customer-key", "k", "{dest}", "pg1", "latest", "{out}"], {}, "SSE-C"),
    ],
)
def test_a_flag_not_built_is_refused_with_exit_3_and_named(
    argv: list[str], env: dict[str, str], named: str, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    wal = tmp_path / WAL
    wal.write_bytes(b"\0" * 16)
    values = {"dest": f"file://{dest}", "wal": str(wal), "out": str(tmp_path / "restored")}
    result = pgvault(*[a.format(**values) for a in argv], env=env)
    assert result.returncode == 3, result.stderr
    assert named in result.stderr and "not available" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not dest.exists() or not any(dest.iterdir())  # nothing written
    assert not (tmp_path / "restored").exists()
