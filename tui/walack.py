"""archive_command's fast entry for `wal-archive --async`: the standard library only.

    archive_command = '/path/to/venv/bin/python -I -S /path/to/tui/walack.py
                       [--state-dir DIR] --batch wal-archive --async [flags] URL SERVER %p'

PostgreSQL starts one process per WAL file. With `-S` the interpreter skips `site` (the
venv's path hooks) and this script loads neither argparse, logging nor any storage SDK: it
finds the spool exactly as `pgvault` does, waits for the running pusher to store the file
(the same marker, naming the same file identity, written only after the store confirmed the
object) and exits 0. Anything else (no pusher running, a failed attempt, a flag it does not
know, -t, a hook call) runs the full `pgvault` command in this same process, after `site`,
with the same arguments: the outcome is the one `pgvault ...` gives.
"""

from __future__ import annotations

import os
import sys

# The directory holding `core` and `tui` (the checkout, or site-packages once installed).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command_args(argv: list[str]) -> list[str] | None:
    """wal-archive's own arguments when argv is `[--state-dir DIR] --batch wal-archive ...`."""
    from tui.batch.wal_fast import only_state_dir

    if "--batch" not in argv:
        return None
    at = argv.index("--batch")
    if not only_state_dir(argv[:at]) or argv[at + 1 : at + 2] != ["wal-archive"]:
        return None
    return argv[at + 2 :]


def main(argv: list[str]) -> int:
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    args = _command_args(argv)
    if args is not None:
        from tui.batch.wal_fast import acknowledge_stored

        if acknowledge_stored(args):
            return 0
    return _full_command(argv)


def _full_command(argv: list[str]) -> int:
    """`pgvault ARGV` in this process: site-packages (the SDKs) first, as its script has."""
    if sys.flags.no_site:
        import site

        site.main()
    from tui.cli import main as pgvault

    return pgvault(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
