"""What the catalog commands (backup-list, -show, -delete, -keep, verify) share: the source
URL and server positionals, barman-cloud's general and connection flags, `-t`, `--format`."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.storage import ObjectStore
from tui.batch.options import Destination, add_cloud, add_general, destination_from


def add_source(parser: argparse.ArgumentParser, description: str) -> None:
    parser.description = description
    parser.add_argument(
        "url",
        metavar="SOURCE_URL",
        help="s3://, gs://, azure://, https://ACCOUNT.blob.core.windows.net/ or file:// source",
    )
    parser.add_argument("server_name", metavar="SERVER_NAME", help="the name of the server")
    add_general(parser)
    add_cloud(parser)


def add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=("console", "json"),
        default="console",
        help="output format (default: console)",
    )


def source(args: argparse.Namespace, **overrides: Any) -> Destination:
    return destination_from(args, **overrides)


@contextmanager
def opened(args: argparse.Namespace, **overrides: Any) -> Iterator[ObjectStore]:
    """The store named on the command line."""
    with source(args, **overrides).open() as store:
        yield store


def connectivity_test(args: argparse.Namespace) -> None:
    """-t: the endpoint answers and the bucket exists (exit 0), as barman-cloud's -t."""
    source(args).check()
