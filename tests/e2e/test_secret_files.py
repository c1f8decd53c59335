"""A passphrase or identity file that is no such file is refused at once, in one line.

A FIFO nobody writes to hung `keys init`/`backup --encryption-passphrase-file` forever (a
cron job that never ends); a 2 MiB file was read whole (and /dev/zero, were it 0600, without
end). A pipe that has a writer, as `<(pass show pg)` gives, is still read.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from tests.support.cli import pgvault


def _with_secret_file(tmp_path: Path, flag: str, path: Path) -> tuple[int, str]:
    """keys init for a passphrase file; a backup (of no server) for an identity file."""
    env = {"PGVAULT_STATE_DIR": str(tmp_path / "state")}
    url = f"file://{tmp_path / 'dest'}"
    if flag == "--identity-file":
        argv = ("backup", "-h", str(tmp_path / "no-socket"), "-p", "1", flag, str(path), url)
    else:
        argv = ("keys", "init", url, flag, str(path))
    done = pgvault(*argv, "pg1", env=env, timeout=60)
    return done.returncode, done.stderr


def test_a_fifo_nobody_writes_and_a_huge_file_are_with_secret_file(tmp_path: Path) -> None:
    fifo, huge = tmp_path / "fifo", tmp_path / "huge"
    os.mkfifo(fifo, 0o600)
    huge.write_bytes(b"x" * (2 * 1024 * 1024))
    huge.chmod(0o600)
    for flag, what in (
        ("--encryption-passphrase-file", "passphrase file"),
        ("--identity-file", "identity file"),
    ):
        code, err = _with_secret_file(tmp_path, flag, fifo)
        assert code == 3 and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1, err
        code, err = _with_secret_file(tmp_path, flag, huge)
        assert code == 3, err
        assert f"the {what} {huge} is larger than 1 MiB" in err, err
    assert not (tmp_path / "dest").exists()


def test_a_pipe_with_a_writer_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)

    def write() -> None:
        with open(fifo, "w") as fh:
            fh.write("a passphrase from a pipe\n")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    code, err = _with_secret_file(tmp_path, "--encryption-passphrase-file", fifo)
    writer.join(10)
    assert code == 0, err
    assert (tmp_path / "dest" / "pg1" / "pgvault.keys").exists()
