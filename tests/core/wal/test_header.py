"""WAL files are checked before they are archived or handed to PostgreSQL."""

from __future__ import annotations

import struct

import pytest

from core.wal.header import BadWalFile, check_wal_file, parse_long_header
from tests.support.wal import HISTORY_2, WalSample, synthetic_segment

NAME = "000000010000000000000003"


def test_real_segments_pass_and_report_their_cluster(wal_sample: WalSample) -> None:
    for name in wal_sample.segments:
        header = check_wal_file(name, wal_sample.read(name), wal_sample.system_identifier)
        assert header is not None
        assert header.system_identifier == wal_sample.system_identifier
        assert header.segment_size == 16 * 1024 * 1024
        assert header.postgres_major is not None and header.postgres_major >= 13
    assert check_wal_file(wal_sample.backup_label, wal_sample.read(wal_sample.backup_label)) is None


def test_a_segment_under_another_name_is_refused(wal_sample: WalSample) -> None:
    first, second = wal_sample.segments[:2]
    with pytest.raises(BadWalFile, match="belongs to the segment"):
        check_wal_file(second, wal_sample.read(first))


def test_a_truncated_segment_is_refused(wal_sample: WalSample) -> None:
    name = wal_sample.segments[0]
    data = wal_sample.read(name)
    with pytest.raises(BadWalFile, match="bytes where the header says"):
        check_wal_file(name, data[: len(data) // 2])
    with pytest.raises(BadWalFile, match="shorter than a WAL page header"):
        check_wal_file(name, data[:20])


def test_wal_of_another_cluster_is_refused(wal_sample: WalSample) -> None:
    name = wal_sample.segments[0]
    with pytest.raises(BadWalFile, match="not of this cluster"):
        check_wal_file(name, wal_sample.read(name), wal_sample.system_identifier + 1)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b"\0\0" + b[2:], "magic"),
        (lambda b: b[:2] + b"\0\0" + b[4:], "long header"),
        (lambda b: b[:32] + struct.pack("<I", 12345) + b[36:], "segment size"),
        (lambda b: b[:36] + struct.pack("<I", 100) + b[40:], "block size"),
        (lambda b: b[:4] + struct.pack("<I", 9) + b[8:], "timeline"),
        (lambda b: bytes(len(b)), "magic"),
    ],
)
def test_garbage_headers_are_refused(damage: object, message: str) -> None:
    data = damage(synthetic_segment(NAME))  # type: ignore[operator]
    with pytest.raises(BadWalFile, match=message):
        check_wal_file(NAME, data)


def test_partial_segments_and_history_files() -> None:
    check_wal_file(NAME + ".partial", synthetic_segment(NAME))
    check_wal_file("00000002.history", HISTORY_2)
    for bad in (b"", b"\xff\xfe", b"2\t0/5000EC0\tparent after child\n", b"garbage line\n"):
        with pytest.raises(BadWalFile):
            check_wal_file("00000002.history", bad)
    with pytest.raises(BadWalFile):
        check_wal_file("000000010000000000000002.00000028.backup", b"not a label")


def test_the_first_segment_of_a_new_timeline_may_carry_the_parent_timeline() -> None:
    # PostgreSQL copies the parent's last segment to start the new timeline.
    parent_copy = synthetic_segment("000000010000000000000005")
    assert parse_long_header(parent_copy).timeline == 1
    check_wal_file("000000020000000000000005", parent_copy)
