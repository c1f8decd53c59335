"""Flags shared by batch commands, named and defaulted as barman-cloud names them.

This is the argparse edge: every command turns its namespace into typed values here or
in its own module (a Destination, a core request), and only those go further.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from core import __version__
from core.catalog.layout import validate_server_name
from core.errors import ContainerNotFound, ExitCode, InputError
from core.names import check_line_safe
from core.sizes import parse_size
from core.tags import parse_tag
from core.urls import CLOUD_PROVIDER_CHOICES, Location, Provider, parse_endpoint, parse_location
from tui.batch.encryption_options import refuse_passphrase_value

if TYPE_CHECKING:
    from core.storage import ObjectStore, StoreConfig


class ParseExit(Exception):
    """--help or --version was handled; exit with this code."""

    def __init__(self, code: int) -> None:
        self.code = code


class BatchParser(argparse.ArgumentParser):
    """argparse that reports bad input as exit 3 with one line, never SystemExit(2)."""

    def error(self, message: str) -> NoReturn:
        raise InputError(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            print(message, file=sys.stderr if status else sys.stdout, end="")
        raise ParseExit(ExitCode.OK if status == 0 else ExitCode.INPUT)


def print_json(value: Any) -> None:
    """A command's --format json output: one document on stdout, keys sorted, UTF-8 as is."""
    print(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def size(text: str) -> int:
    """argparse type for barman-style sizes."""
    try:
        return parse_size(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: the largest count or number of seconds a flag takes (a C int: SDKs, sockets, SQLite)
MAX_COUNT = 2**31 - 1


def non_negative_int(text: str) -> int:
    """argparse type for counts that may be 0 (ASCII digits, at most MAX_COUNT)."""
    return _count(text, 0)


def positive_int(text: str) -> int:
    """argparse type for counts of at least 1."""
    return _count(text, 1)


def _count(text: str, minimum: int) -> int:
    # int() also takes '²'-free Unicode digits and '1_000'; a count is plain ASCII digits.
    digits = text.strip().removeprefix("+")
    negative = digits.startswith("-") and digits[1:].isascii() and digits[1:].isdigit()
    if not negative and not (digits.isascii() and digits.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    # one message per bound, the true one: -5 and 0 both miss "at least 1" alike
    if negative or int(digits) < minimum:
        bound = "0 or more" if minimum == 0 else f"at least {minimum}"
        raise argparse.ArgumentTypeError(f"{text!r} must be {bound}")
    value = int(digits)
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{text!r} is too large (at most {MAX_COUNT})")
    return value


MAX_PORT = 65535


def tcp_port(text: str) -> int:
    """A TCP port, 1 to 65535."""
    value = positive_int(text)
    if value > MAX_PORT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1 to {MAX_PORT})")
    return value


def backup_reference(text: str) -> str:
    """argparse type for BACKUP (an ID, a name, latest...): not empty, no control character."""
    if not text.strip():
        raise argparse.ArgumentTypeError("name a backup: an ID, a name, latest or oldest")
    try:
        return check_line_safe(text, "backup")
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def database_name(text: str) -> str:
    """argparse type for a database name: an empty one would name no database (and chose
    the physical path), so it is refused."""
    if not text:
        raise argparse.ArgumentTypeError("'' names no database: give a database name")
    return text


def tag(text: str) -> tuple[str, str]:
    """A KEY,VALUE tag as barman-cloud writes it."""
    try:
        return parse_tag(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_help(parser: argparse.ArgumentParser, *, short: bool = True) -> None:
    """-h/--help (the parsers are built with add_help=False: backup's -h is --host)."""
    flags = ("-h", "--help") if short else ("--help",)
    parser.add_argument(*flags, action="help", help="show this help message and exit")


def add_general(parser: argparse.ArgumentParser, *, short_help: bool = True) -> None:
    """-V, -h/--help (--help alone where -h is --host), -v/-q (counted, mutually exclusive)."""
    parser.add_argument("-V", "--version", action="version", version=f"pgvault {__version__}")
    refuse_passphrase_value(parser)
    add_help(parser, short=short_help)
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="increase output verbosity (e.g., -vv is more than -v)",
    )
    verbosity.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=0,
        help="decrease output verbosity (e.g., -qq is less than -q)",
    )


def add_cloud(parser: argparse.ArgumentParser, *, test: bool = True, writes: bool = False) -> None:
    """Provider selection and the per-provider connection flags (and SSE when writing)."""
    if test:
        parser.add_argument(
            "-t", "--test", action="store_true", help="test cloud connectivity and exit"
        )
    parser.add_argument(
        "--cloud-provider",
        choices=CLOUD_PROVIDER_CHOICES,
        default=None,
        help="the cloud provider (default: inferred from the URL; webdav makes an http(s):// "
        "URL a WebDAV server's, as dav:// and davs:// are)",
    )
    aws = parser.add_argument_group("Extra options for the aws-s3 cloud provider")
    aws.add_argument("--endpoint-url", help="override the default S3 endpoint URL")
    aws.add_argument(
        "-P",
        "--aws-profile",
        "--profile",
        dest="aws_profile",
        help="profile name (e.g. INI section in AWS credentials file)",
    )
    aws.add_argument(
        "--read-timeout",
        type=positive_int,
        help="seconds to wait when reading from a connection (default: 60)",
    )
    aws.add_argument(
        "--addressing-style",
        choices=("auto", "virtual", "path"),
        help="S3 addressing style (default: auto)",
    )
    aws.add_argument(
        "--sse-customer-key", help="SSE-C key file (barman-cloud 3.20): not available yet"
    )
    if writes:
        aws.add_argument(
            "-e",
            "--encryption",
            choices=("AES256", "aws:kms"),
            help="the server-side encryption used when storing data in S3",
        )
        aws.add_argument(
            "--sse-kms-key-id", help="the AWS KMS key ID or ARN (only with -e aws:kms)"
        )
    azure = parser.add_argument_group("Extra options for the azure-blob-storage cloud provider")
    azure.add_argument(
        "--azure-credential",
        "--credential",
        "--default",
        dest="azure_credential",
        choices=("azure-cli", "managed-identity", "default"),
        help="the type of Azure credential (default: from the environment)",
    )
    if writes:
        azure.add_argument(
            "--encryption-scope", help="an Azure encryption scope used to encrypt the data"
        )
        gcs = parser.add_argument_group("Extra options for the google-cloud-storage provider")
        gcs.add_argument("--kms-key-name", help="the GCP KMS key used to encrypt the data")


def add_tags(parser: argparse.ArgumentParser, name: str = "tags", what: str = "files") -> None:
    """--tags K,V [K,V ...] or repeated --tag K,V (mutually exclusive), at most ten."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        f"--{name}",
        nargs="*",
        type=tag,
        metavar="KEY,VALUE",
        default=None,
        help=f"tags to be added to all uploaded {what} in cloud storage",
    )
    group.add_argument(
        f"--{name.rstrip('s')}",
        action="append",
        type=tag,
        metavar="KEY,VALUE",
        dest=f"{name.replace('-', '_')}_repeated",
        help=f"one tag for {what} (repeatable)",
    )


@dataclass(frozen=True)
class Destination:
    """The command's URL and connection flags, parsed once: where, and how to connect."""

    location: Location
    config: StoreConfig

    def open(self) -> ObjectStore:
        """The store (the provider's SDK is imported here)."""
        from core.storage import open_store

        return open_store(self.location, self.config)

    def check(self) -> None:
        """-t: see check_store."""
        check_store(self.location, self.config)


def destination_from(
    args: argparse.Namespace, url: str | None = None, **overrides: Any
) -> Destination:
    """The Destination of the flags; `url` replaces the URL argument, `overrides` the
    StoreConfig fields a command sets itself (jobs, chunk size, bandwidth)."""
    return Destination(location_from(args, url), store_config_from(args, **overrides))


def tags_from(args: argparse.Namespace, name: str = "tags") -> tuple[tuple[str, str], ...]:
    name = name.replace("-", "_")
    values = getattr(args, name, None) or getattr(args, f"{name}_repeated", None) or []
    # core.storage loads lazily: archive_command's fast path never touches a store.
    from core.storage import validate_tags

    return validate_tags(values)


def location_from(args: argparse.Namespace, url: str | None = None) -> Location:
    """The URL argument (or `url`, when a command completed it) with --cloud-provider, the
    server name checked, and no flag of another provider (refuse_inapplicable)."""
    location = parse_location(args.url if url is None else url, args.cloud_provider)
    server = getattr(args, "server_name", None)
    if server is not None:
        validate_server_name(server)
    refuse_inapplicable(args, location.provider)
    return location


#: flags (argparse dests) only one provider uses; None: every cloud provider, not file://
PROVIDER_FLAGS: dict[Provider | None, tuple[str, ...]] = {
    Provider.S3: (
        "endpoint_url",
        "aws_profile",
        "addressing_style",
        "encryption",
        "sse_kms_key_id",
    ),
    Provider.AZURE: (
        "azure_credential",
        "encryption_scope",
        "max_block_size",
        "max_concurrency",
        "max_single_put_size",
    ),
    Provider.GCS: ("kms_key_name",),
    None: ("read_timeout",),
}


def flag_name(parser_dest: str) -> str:
    """The long flag of an argparse dest, as an error message names it."""
    return "--" + parser_dest.replace("_", "-")


def given_flags(args: argparse.Namespace, dests: Iterable[str]) -> list[str]:
    """The long flags of `dests` the command line gave (a value, or a switch turned on)."""
    return [flag_name(d) for d in dests if getattr(args, d, None) not in (None, False, [], ())]


def refuse_given(args: argparse.Namespace, dests: Iterable[str], why: str) -> None:
    """Flags given that cannot apply here: exit 3, naming each and why (`why` ends it)."""
    given = given_flags(args, dests)
    if given:
        raise InputError(f"{', '.join(given)} cannot apply {why}")


def refuse_inapplicable(args: argparse.Namespace, provider: Provider) -> None:
    """A provider's flag given for another provider's destination is exit 3, naming it."""
    refused = []
    for owner, dests in PROVIDER_FLAGS.items():
        if owner is provider or (owner is None and provider is not Provider.FILE):
            continue
        given = given_flags(args, dests)
        if given:
            applies = owner.value if owner is not None else "cloud destinations"
            refused.append(f"{', '.join(given)}: for {applies} only")
    if refused:
        raise InputError(f"{'; '.join(refused)}: cannot apply to this {provider.value} destination")


def store_config_from(args: argparse.Namespace, **overrides: Any) -> StoreConfig:
    """A StoreConfig from the parsed flags; commands pass jobs, chunk and bandwidth."""
    if getattr(args, "sse_customer_key", None):
        raise InputError("--sse-customer-key (SSE-C) is not available in pgvault yet")
    sse = getattr(args, "encryption", None)
    kms_id = getattr(args, "sse_kms_key_id", None)
    if kms_id and sse != "aws:kms":
        raise InputError("--sse-kms-key-id is only allowed with -e/--encryption aws:kms")
    values: dict[str, Any] = {
        "endpoint_url": parse_endpoint(args.endpoint_url),
        "aws_profile": args.aws_profile,
        "read_timeout": args.read_timeout,
        "addressing_style": None if args.addressing_style == "auto" else args.addressing_style,
        "azure_credential": args.azure_credential,
        "sse": sse,
        "sse_kms_key_id": kms_id,
        "encryption_scope": getattr(args, "encryption_scope", None),
        "kms_key_name": getattr(args, "kms_key_name", None),
    }
    values.update(overrides)
    from core.storage import StoreConfig

    return StoreConfig(**values)


def check_store(location: Location, config: StoreConfig) -> None:
    """-t, as barman-cloud's: the endpoint answers, the credentials work and the bucket exists.

    Not retried: an operator or a script asking this wants the answer now. Raises the
    storage error (exit 2, or 1 for a missing bucket or directory, never created) otherwise.
    """
    from dataclasses import replace

    from core.storage import open_store
    from core.storage.retry import NO_RETRY

    if location.provider is Provider.FILE and not os.path.isdir(location.bucket):
        # The local store creates its directory on first use; a test must not.
        raise ContainerNotFound(
            f"directory {location.bucket} does not exist (-t creates nothing: create it, "
            "owned by the user that archives and backs up, usually postgres)"
        )
    with open_store(location, replace(config, retry=NO_RETRY)) as store:
        store.check()
