"""Where the fast path's spool is, read from the raw arguments before any heavy import.

`pgvault --batch wal-archive --async ... %p` first tries `quick_ack`: when the pusher has
already stored the file, archive_command exits 0 after a stat and a small read, without
loading argparse or any storage code. Otherwise the full command runs. Both find the spool
with `spool_location`, so they always agree. This module only reads the command line; the
spool's name and the acknowledgement itself are core.wal.ack's.
"""

from __future__ import annotations

import os

DEFAULT_SPOOL = "/var/tmp/pgvault-walarchive"  # noqa: S108 - private_dir refuses a shared one
_HEX = frozenset("0123456789ABCDEF")


def _hex(text: str, length: int) -> bool:
    return len(text) == length and _HEX.issuperset(text)


def _is_wal_name(name: str) -> bool:
    """A segment, partial segment, backup label or history file name (without `re`, whose
    import alone costs archive_command milliseconds per call)."""
    if name.endswith(".history"):
        return _hex(name[: -len(".history")], 8)
    if name.endswith(".partial"):
        return _hex(name[: -len(".partial")], 24)
    if name.endswith(".backup"):
        body = name[: -len(".backup")]
        return len(body) == 33 and body[24] == "." and _hex(body[:24], 24) and _hex(body[25:], 8)  # noqa: PLR2004
    return _hex(name, 24)


def _is_verbosity(token: str) -> bool:
    """-v, -vv..., -q, -qq..., --verbose, --quiet."""
    if token in ("--verbose", "--quiet"):
        return True
    flags = token[1:]
    return token.startswith("-") and flags != "" and flags in ("v" * len(flags), "q" * len(flags))


# Flags that do not change how or where files are stored; they do not select the spool.
_VOLATILE_WITH_VALUE = ("--async-timeout",)
_NOT_ARCHIVING = {"-t", "--test", "--help", "-V", "--version"}
# The flags tui/walack.py understands (anything else, or an argparse abbreviation, makes it
# hand the call to the full command): plain switches, and flags taking exactly one value.
SWITCHES = frozenset(
    {"--async", "-z", "--gzip", "-j", "--bzip2", "--xz", "--snappy", "--zstd", "--lz4"}
)
WITH_VALUE = frozenset(
    {
        "--spool-dir", "-J", "--jobs", "--async-timeout", "--pusher-idle",
        "--cloud-provider", "--endpoint-url", "-P", "--aws-profile", "--profile",
        "--read-timeout", "--addressing-style", "-e", "--encryption", "--sse-kms-key-id",
        "--azure-credential", "--credential", "--default", "--encryption-scope",
        "--kms-key-name", "--compression-level", "--credentials-file",
        "--secondary-destination", "--tag", "--history-tag", "--immutability-days",
        "--max-block-size", "--max-concurrency", "--max-single-put-size", "--max-bandwidth",
    }
)  # fmt: skip
DEFAULT_ASYNC_TIMEOUT = 60


def wal_path_index(argv: list[str]) -> int | None:
    """The position of %p: the last argument whose base name is a WAL file name."""
    for index in range(len(argv) - 1, -1, -1):
        token = argv[index]
        if not token.startswith("-") and _is_wal_name(os.path.basename(token)):
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
        if index == wal_index or _is_verbosity(token):
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


def only_state_dir(head: list[str]) -> bool:
    """Nothing before --batch but --state-dir, which the acknowledgement does not need."""
    if len(head) == 2:  # noqa: PLR2004 - the flag and its value
        return head[0] == "--state-dir"
    return not head or (len(head) == 1 and head[0].startswith("--state-dir="))


def understood(argv: list[str]) -> bool:
    """Is this an --async call of only the flags walack knows, with three positionals, the
    last one %p? (Anything else goes to the full command, which parses and judges it.)"""
    index = wal_path_index(argv)
    if index is None or index != len(argv) - 1 or "--async" not in argv:
        return False
    positionals = 0
    tokens = iter(argv)
    for token in tokens:
        flag = token.split("=", 1)[0] if token.startswith("--") else token
        if flag in SWITCHES or _is_verbosity(token):
            continue
        if flag in WITH_VALUE:
            if flag == token and next(tokens, None) is None:
                return False
            continue
        if token.startswith("-"):
            return False
        positionals += 1
    return positionals == 3  # noqa: PLR2004 - DESTINATION_URL SERVER_NAME WAL_PATH


def _async_timeout(argv: list[str]) -> float:
    flag = "--async-timeout"
    value = str(DEFAULT_ASYNC_TIMEOUT)
    for index, token in enumerate(argv):
        if token == flag and index + 1 < len(argv):
            value = argv[index + 1]
        elif token.startswith(f"{flag}="):
            value = token.split("=", 1)[1]
    return float(value) if value.isdigit() and int(value) > 0 else 0.0


def acknowledge_stored(argv: list[str]) -> bool:
    """walack's whole job: True once the running pusher stored the file (exit 0).

    It waits at most half of --async-timeout, so that the full command it hands over to
    (no pusher running, a failed attempt, a flag it does not know) still has time left.
    """
    if not understood(argv) or os.environ.get("BARMAN_HOOK"):
        return False
    timeout = _async_timeout(argv)
    if not timeout:
        return False
    from core.wal.ack import wait_for_pusher

    wal_path = argv[-1]
    root = spool_location(argv, os.path.dirname(os.path.abspath(wal_path)))
    return wait_for_pusher(root, wal_path, timeout / 2) is not None
