"""What a WAL file must look like before it is archived or handed to PostgreSQL.

A segment (and a `.partial` one) starts with a long page header (postgres-internals §4):
xlp_magic u16 @0, xlp_info u16 @2, xlp_tli u32 @4, xlp_pageaddr u64 @8, xlp_rem_len u32 @16,
xlp_sysid u64 @24, xlp_seg_size u32 @32, xlp_xlog_blcksz u32 @36. The checks below refuse
garbage, a truncated file, a file renamed to another segment's name and WAL of another
cluster; they cannot see a flipped bit inside a record (the archive's SHA-256 does that).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from core.errors import PgvaultError
from core.postgres.walnames import (
    Segment,
    is_backup_label,
    is_history,
    is_partial,
    is_segment,
    parse_history,
)

LONG_HEADER = struct.Struct("<HHIQIIQII")
XLP_LONG_HEADER = 0x0002
MIN_SEGMENT = 1 << 20
MAX_SEGMENT = 1 << 30
#: PostgreSQL's WAL block size is a power of two from 1 kB to 64 kB
MIN_BLOCK = 1 << 10
MAX_BLOCK = 1 << 16
# XLOG_PAGE_MAGIC of each major version; later versions keep the 0xD1xx range.
MAGIC_VERSIONS = {
    0xD093: 96,
    0xD097: 10,
    0xD098: 11,
    0xD101: 12,
    0xD106: 13,
    0xD10D: 14,
    0xD110: 15,
    0xD113: 16,
    0xD116: 17,
    0xD118: 18,
}


class BadWalFile(ValueError):
    """The bytes are not a valid WAL file of the given name; the message says why."""


@dataclass(frozen=True)
class SegmentHeader:
    """The long page header at the start of a WAL segment."""

    magic: int
    info: int
    timeline: int
    page_address: int
    system_identifier: int
    segment_size: int
    block_size: int

    @property
    def postgres_major(self) -> int | None:
        return MAGIC_VERSIONS.get(self.magic)


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def parse_long_header(data: bytes | memoryview) -> SegmentHeader:
    """The segment header, or BadWalFile when the first page is not a long WAL header."""
    if len(data) < LONG_HEADER.size:
        raise BadWalFile(f"only {len(data)} bytes, shorter than a WAL page header")
    magic, info, tli, pageaddr, _rem, _pad, sysid, seg_size, blcksz = LONG_HEADER.unpack_from(
        data, 0
    )
    if magic >> 8 not in (0xD0, 0xD1):
        raise BadWalFile(f"bad WAL page magic 0x{magic:04X}")
    if not info & XLP_LONG_HEADER:
        raise BadWalFile("the first page has no long header")
    if not (_power_of_two(seg_size) and MIN_SEGMENT <= seg_size <= MAX_SEGMENT):
        raise BadWalFile(f"invalid segment size {seg_size} in the header")
    if not (_power_of_two(blcksz) and MIN_BLOCK <= blcksz <= MAX_BLOCK):
        raise BadWalFile(f"invalid WAL block size {blcksz} in the header")
    if tli < 1:
        raise BadWalFile("timeline 0 in the header")
    return SegmentHeader(magic, info, tli, pageaddr, sysid, seg_size, blcksz)


def check_segment(
    name: str, data: bytes | memoryview, system_identifier: int | None = None
) -> SegmentHeader:
    """Check a segment or `.partial` segment: header, size, address, cluster.

    `name` is the segment name the bytes must belong to (a `.partial` suffix is allowed).
    """
    header = parse_long_header(data)
    base = name[:24]
    if len(data) != header.segment_size:
        raise BadWalFile(
            f"{len(data)} bytes where the header says segments are {header.segment_size} bytes"
        )
    try:
        segment = Segment.parse(base, header.segment_size)
    except PgvaultError as exc:
        raise BadWalFile(str(exc)) from None
    expected = segment.segno * header.segment_size
    if header.page_address != expected:
        raise BadWalFile(
            f"the header belongs to the segment at {header.page_address:X}, not to {base}"
        )
    # The first segment of a new timeline is a copy of the parent's: its header may carry
    # the parent's (smaller) timeline, never a larger one.
    if header.timeline > segment.timeline:
        raise BadWalFile(f"header timeline {header.timeline} is after the name's timeline")
    if system_identifier is not None and header.system_identifier != system_identifier:
        raise BadWalFile(
            f"WAL of database system {header.system_identifier}, "
            f"not of this cluster ({system_identifier})"
        )
    return header


def check_history(name: str, data: bytes) -> None:
    """A timeline history file: text lines `<parent tli> <switch LSN> <reason>`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadWalFile("a history file that is not text") from None
    try:
        entries = parse_history(text)
    except PgvaultError as exc:
        raise BadWalFile(str(exc)) from None
    timeline = int(name[:8], 16)
    if not entries:
        raise BadWalFile("an empty history file")
    if any(e.parent_timeline >= timeline for e in entries):
        raise BadWalFile(f"a parent timeline not before timeline {timeline}")


def check_backup_label(data: bytes) -> None:
    """A `.backup` file PostgreSQL writes at the end of a base backup."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadWalFile("a backup history file that is not text") from None
    if "START WAL LOCATION:" not in text:
        raise BadWalFile("a backup history file without START WAL LOCATION")


def check_wal_file(
    name: str, data: bytes | memoryview, system_identifier: int | None = None
) -> SegmentHeader | None:
    """Check any archivable WAL file by its name; returns the header of a segment."""
    if is_segment(name) or is_partial(name):
        return check_segment(name, data, system_identifier)
    if is_history(name):
        check_history(name, bytes(data))
        return None
    if is_backup_label(name):
        check_backup_label(bytes(data))
        return None
    raise BadWalFile(f"{name!r} is not a WAL file name")
