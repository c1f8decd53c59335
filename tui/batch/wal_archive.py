"""`pgvault --batch wal-archive [flags] DESTINATION_URL SERVER_NAME WAL_PATH`.

barman-cloud-wal-archive's surface for archive_command, plus the fast path (`--async`): a
local spool and a background pusher that uploads many segments at once.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import ExitCode, InputError
from tui.batch.main import Context
from tui.batch.options import (
    Destination,
    add_cloud,
    add_general,
    add_tags,
    location_from,
    positive_int,
    size,
    store_config_from,
    tags_from,
)
from tui.batch.wal_fast import DEFAULT_SPOOL, spool_location

if TYPE_CHECKING:
    from core.storage import StoreConfig
    from core.urls import Location
    from core.wal.archive import ArchiveSettings
    from core.wal.archive_command import WalArchiveRequest

log = logging.getLogger("pgvault.wal")

COMPRESSIONS = (
    ("-z", "--gzip", "gzip"),
    ("-j", "--bzip2", "bzip2"),
    (None, "--xz", "xz"),
    (None, "--snappy", "snappy"),
    (None, "--zstd", "zstd"),
    (None, "--lz4", "lz4"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Archive one WAL file for archive_command ('... %p'), in barman-cloud's layout. "
        "Exit 0 only once the file is stored; a file already archived with the same content "
        "succeeds, with different content it fails (exit 1) and the archive is left as it was."
    )
    parser.add_argument(
        "url",
        metavar="DESTINATION_URL",
        help="s3://, gs://, azure://, https://ACCOUNT.blob.core.windows.net/ or file://",
    )
    parser.add_argument("server_name", metavar="SERVER_NAME", help="the name of the server")
    parser.add_argument(
        "wal_path",
        metavar="WAL_PATH",
        nargs="?",
        default=None,
        help="the value of the '%%p' keyword (according to 'archive_command')",
    )
    add_general(parser)
    add_cloud(parser, writes=True)
    compression = parser.add_mutually_exclusive_group()
    for short, long, name in COMPRESSIONS:
        flags = [f for f in (short, long) if f]
        compression.add_argument(
            *flags,
            dest="compression",
            action="store_const",
            const=name,
            help=f"{name}-compress the WAL while uploading",
        )
    parser.add_argument(
        "--compression-level",
        help="low, medium (default), high, or a number for the chosen algorithm (clamped)",
    )
    parser.add_argument(
        "--credentials-file",
        metavar="PATH",
        help="a 0600 JSON file of credentials (the format `pgvault --batch restore` writes "
        'for wal-restore: {"format": 1, "url": {...}, "environment": {...}}): its URL '
        "parameters are added to DESTINATION_URL and its variables to the environment, so "
        "that no secret sits in archive_command",
    )
    parser.add_argument(
        "--secondary-destination",
        metavar="URL",
        help="a second destination (any provider; credentials in its query string or the "
        "environment) the file is also archived to: exit 0 only once both stores hold it",
    )
    add_tags(parser, "tags", "WAL files")
    add_tags(parser, "history-tags", "history files (used instead of --tags for them)")
    parser.add_argument(
        "--immutability-days",
        type=positive_int,
        metavar="N",
        help="S3 only, on a bucket with Object Lock enabled (a vault's --immutability-days): "
        "every WAL and history file is written retained N days (GOVERNANCE mode)",
    )
    _add_azure(parser)
    _add_fast_path(parser)


def _add_azure(parser: argparse.ArgumentParser) -> None:
    azure = parser.add_argument_group("Azure uploads (barman-cloud's chunk method)")
    azure.add_argument(
        "--max-block-size",
        type=size,
        help="the chunk size of the concurrent chunk method (default: 4MB)",
    )
    azure.add_argument(
        "--max-concurrency",
        type=positive_int,
        help="chunks of one WAL file uploaded concurrently (default: 1)",
    )
    azure.add_argument(
        "--max-single-put-size",
        type=size,
        help="larger objects use the concurrent chunk method (default: 64MB)",
    )
    parser.add_argument(
        "--max-bandwidth",
        type=size,
        help="the maximum bytes per second uploaded, shared by all uploads (default: no limit)",
    )


def _add_fast_path(parser: argparse.ArgumentParser) -> None:
    fast = parser.add_argument_group(
        "Fast path (pgvault): a local spool and a background pusher uploading many files "
        "at once; PostgreSQL still hears success only for a stored file"
    )
    fast.add_argument(
        "--async",
        dest="async_mode",
        action="store_true",
        help="hand the file to the background pusher and wait for it to be stored",
    )
    fast.add_argument(
        "--spool-dir",
        help=f"where the pusher keeps its markers, lock and log (default: {DEFAULT_SPOOL})",
    )
    fast.add_argument(
        "-J",
        "--jobs",
        type=positive_int,
        help="WAL files the pusher uploads at the same time (default: 4)",
    )
    fast.add_argument(
        "--async-timeout",
        type=positive_int,
        help="seconds archive_command waits for its file before failing (default: 60)",
    )
    fast.add_argument(
        "--pusher-idle",
        type=positive_int,
        help="seconds without archive_command calls after which the pusher exits (default: 30)",
    )


@dataclass(frozen=True)
class FastPath:
    """--spool-dir, -J, --async-timeout and --pusher-idle, defaults filled in."""

    spool_dir: str
    jobs: int
    timeout: int
    idle: int


@dataclass(frozen=True)
class Parsed:
    """The command line of one call, checked: bad input is exit 3 before anything runs."""

    location: Location
    settings: ArchiveSettings
    #: Azure's chunk method: --max-concurrency (blocks in flight), defaults filled in
    concurrency: int
    #: None without --async
    fast: FastPath | None
    secondary: Location | None = None


def _wal_path(args: argparse.Namespace) -> str:
    """%p, or BARMAN_FILE when called as a Barman pre archive hook (as barman-cloud is)."""
    hook, phase = os.environ.get("BARMAN_HOOK"), os.environ.get("BARMAN_PHASE")
    if hook is not None and phase is not None:
        if hook not in ("archive_script", "archive_retry_script") or phase != "pre":
            raise InputError(f"wal-archive called as an unsupported hook script: {phase}_{hook}")
        path = os.environ.get("BARMAN_FILE")
        if not path:
            raise InputError("expected environment variable BARMAN_FILE not set")
        return path
    if args.wal_path is None:
        raise InputError("the following arguments are required: WAL_PATH")
    return str(args.wal_path)


def _settings(args: argparse.Namespace, block_size: int, single_put: int) -> ArchiveSettings:
    """ArchiveSettings from the flags (imports the codecs only when archiving)."""
    from core.codecs import get_codec
    from core.wal.archive import ArchiveSettings, resolve_level

    codec = get_codec(args.compression)
    history = tags_from(args, "history-tags")
    return ArchiveSettings(
        compression=args.compression,
        level=resolve_level(codec, args.compression_level),
        tags=tags_from(args, "tags"),
        history_tags=history or None,
        single_put_limit=single_put,
        block_size=block_size,
    )


AZURE_DEFAULTS: dict[str, object] = {
    "max_block_size": size("4MB"),
    "max_concurrency": 1,
    "max_single_put_size": size("64MB"),
}
FAST_PATH_DEFAULTS: dict[str, object] = {
    "spool_dir": DEFAULT_SPOOL,
    "jobs": 4,
    "async_timeout": 60,
    "pusher_idle": 30,
}


def _given(args: argparse.Namespace, defaults: dict[str, object]) -> dict[str, Any]:
    """Each flag's value, or its default when it was not given."""
    return {
        name: default if getattr(args, name) is None else getattr(args, name)
        for name, default in defaults.items()
    }


def _bare(args: argparse.Namespace) -> Location | None:
    """The URL as archive_command gives it, without the credentials file's parameters."""
    try:
        return location_from(args)
    except InputError:  # e.g. AUTH=specified whose keys are in the file
        return None


def _warn_secrets_in_url(location: Location | None) -> None:
    """Name, never show, the credentials archive_command itself carries in its URL."""
    from core.urls import credential_params

    given = credential_params(location) if location else {}
    names = sorted(set(given) - {"AUTH", "AWS_ACCESS_KEY_ID", "DAV_USER"})
    if names:
        log.warning(
            "the destination URL carries credentials (%s): PostgreSQL shows archive_command "
            "in postgresql.auto.conf, its logs, pg_settings and ps; move them to a "
            "--credentials-file (mode 600)",
            ", ".join(names),
        )


def _fast_path(args: argparse.Namespace) -> FastPath | None:
    given = [name for name in FAST_PATH_DEFAULTS if getattr(args, name) is not None]
    if given and not args.async_mode:
        names = ", ".join("-J/--jobs" if n == "jobs" else f"--{n.replace('_', '-')}" for n in given)
        verb = "applies" if len(given) == 1 else "apply"
        raise InputError(f"{names} {verb} only with --async")
    if not args.async_mode:
        return None
    values = _given(args, FAST_PATH_DEFAULTS)
    return FastPath(
        values["spool_dir"], values["jobs"], values["async_timeout"], values["pusher_idle"]
    )


def parse(args: argparse.Namespace) -> Parsed:
    """Bad input is exit 3 here, also in --async mode (before any pusher sees it)."""
    url = args.url
    if args.credentials_file:
        from core.credentials_file import apply_credentials_file

        url = apply_credentials_file(args.credentials_file, url)
    location = location_from(args, url)  # a flag of another provider is refused there
    _warn_secrets_in_url(location if url == args.url else _bare(args))
    azure = _given(args, AZURE_DEFAULTS)
    fast = _fast_path(args)
    # tags, history tags, compression level
    settings = _settings(args, azure["max_block_size"], azure["max_single_put_size"])
    if args.sse_kms_key_id and args.encryption != "aws:kms":
        raise InputError("--sse-kms-key-id is only allowed with -e/--encryption aws:kms")
    from core.urls import Provider

    if args.immutability_days is not None and location.provider is not Provider.S3:
        raise InputError(
            "--immutability-days applies to S3 destinations only (S3 Object Lock); "
            f"{location.display()} is {location.provider.value}"
        )
    return Parsed(location, settings, azure["max_concurrency"], fast, _secondary(args))


def _secondary(args: argparse.Namespace) -> Location | None:
    if args.secondary_destination is None:
        return None
    from core.urls import parse_location

    secondary = parse_location(args.secondary_destination)
    _warn_secrets_in_url(secondary)
    if secondary.display() == location_from(args).display():
        raise InputError("--secondary-destination names the primary destination itself")
    return secondary


def _store_config(args: argparse.Namespace, parsed: Parsed) -> StoreConfig:
    return store_config_from(
        args,
        jobs=parsed.concurrency,
        max_bandwidth=args.max_bandwidth,
        azure_max_block_size=parsed.settings.block_size,
        azure_max_single_put_size=parsed.settings.single_put_limit,
        object_lock_days=args.immutability_days,
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from core.storage import StoreConfig
    from core.wal.archive_command import WalArchiveRequest

    parsed = parse(args)
    if args.test:
        Destination(parsed.location, store_config_from(args)).check()
        if parsed.secondary is not None:
            Destination(parsed.secondary, StoreConfig()).check()
        return ExitCode.OK
    path = _wal_path(args)
    request = WalArchiveRequest(
        parsed.location,
        _store_config(args, parsed),
        args.server_name,
        parsed.settings,
        secondary=parsed.secondary,
        secondary_config=StoreConfig(max_bandwidth=args.max_bandwidth),
    )
    if parsed.fast is None:
        from core.wal.archive_command import archive_now

        archive_now(request, path)  # logs what it did at INFO (-v)
        return ExitCode.OK
    return _run_async(request, parsed.fast, path, ctx, args.verbose - args.quiet)


def _run_async(
    request: WalArchiveRequest, fast: FastPath, path: str, ctx: Context, verbosity: int
) -> int:
    from core.wal.archive_command import PusherRequest, archive_through_pusher
    from core.wal.pusher import PusherSettings

    wal_dir = os.path.dirname(os.path.abspath(path))
    if not os.path.isabs(fast.spool_dir):
        raise InputError(f"--spool-dir must be an absolute path, got {fast.spool_dir!r}")
    pusher = PusherRequest(
        archive=request,
        pusher=PusherSettings(jobs=fast.jobs, idle_exit=float(fast.idle)),
        wal_dir=wal_dir,
        spool=spool_location(list(ctx.argv), wal_dir),
        state_dir=ctx.state_dir,
        verbosity=verbosity,
    )
    outcome = archive_through_pusher(pusher, path, timeout=fast.timeout)
    log.info("%s: %s", os.path.basename(path), outcome)
    return ExitCode.OK
