"""Where the fast path's spool is, read from the raw arguments before any heavy import.

`pgvault --batch wal-archive --async ... %p` first tries `quick_ack`: when the pusher has
already stored the file, archive_command exits 0 after a stat and a small read, without
loading argparse or any storage code. Otherwise the full command runs. Both find the spool
with `spool_location`, so they always agree. This module only reads the command line; the
spool's name and the acknowledgement itself are core.wal.ack's.
"""

from __future__ import annotations

import os
import re

DEFAULT_SPOOL = "/var/tmp/pgvault-walarchive"  # noqa: S108 - private_dir refuses a shared one
_WAL_NAME = re.compile(
    r"^(?:[0-9A-F]{24}(?:\.partial|\.[0-9A-F]{8}\.backup)?|[0-9A-F]{8}\.history)$"
)
_VERBOSITY = re.compile(r"^-(?:v+|q+)$|^--(?:verbose|quiet)$")
# Flags that do not change how or where files are stored; they do not select the spool.
_VOLATILE_WITH_VALUE = ("--async-timeout",)
_NOT_ARCHIVING = {"-t", "--test", "--help", "-V", "--version"}


def wal_path_index(argv: list[str]) -> int | None:
    """The position of %p: the last argument whose base name is a WAL file name."""
    for index in range(len(argv) - 1, -1, -1):
        token = argv[index]
        if not token.startswith("-") and _WAL_NAME.match(os.path.basename(token)):
            return index
    return None


def _spool_dir(argv: list[str]) -> str:
    for index, arg in enumerate(argv):
        if arg == "--spool-dir" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--spool-dir="):
            return arg.split("=", 1)[1]
    return DEFAULT_SPOOL


def _identity_tokens(argv: list[str], wal_index: int | None) -> list[str]:
    tokens = []
    skip = False
    for index, token in enumerate(argv):
        if skip:
            skip = False
            continue
        if index == wal_index or _VERBOSITY.match(token):
            continue
        if token in _VOLATILE_WITH_VALUE:
            skip = True
            continue
        if token.startswith(tuple(f"{flag}=" for flag in _VOLATILE_WITH_VALUE)):
            continue
        tokens.append(token)
    return tokens


def spool_location(argv: list[str], wal_dir: str) -> str:
    """<spool-dir>/<server>.<hash of the arguments and the pg_wal directory>."""
    from core.wal.ack import spool_root

    index = wal_path_index(argv)
    server = argv[index - 1] if index else "wal"
    if server.startswith("-") or "/" in server:
        server = "wal"
    return spool_root(_spool_dir(argv), server, _identity_tokens(argv, index), wal_dir)


def quick_ack(argv: list[str]) -> bool:
    """True when the pusher already stored the file: archive_command may exit 0."""
    index = wal_path_index(argv)
    if index is None or os.environ.get("BARMAN_HOOK") or _NOT_ARCHIVING.intersection(argv):
        return False
    from core.wal.ack import quick_ack as acknowledge

    wal_path = argv[index]
    root = spool_location(argv, os.path.dirname(os.path.abspath(wal_path)))
    return acknowledge(root, wal_path) is not None
