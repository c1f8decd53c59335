"""WAL names and LSN arithmetic match PostgreSQL's (reference: postgres-internals §4)."""

import pytest

from core.errors import InputError
from core.postgres.walnames import (
    Segment,
    format_lsn,
    hash_dir,
    is_wal_name,
    last_segment_needed,
    parse_history,
    parse_lsn,
    segment_of_lsn,
    segment_range,
)


def test_lsn_round_trip() -> None:
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert format_lsn(parse_lsn("0/17E2918")) == "0/17E2918"
    with pytest.raises(InputError):
        parse_lsn("nonsense")


def test_segment_names_for_16mb_and_1gb_segments() -> None:
    assert segment_of_lsn(1, parse_lsn("0/4000028")) == "000000010000000000000004"
    assert segment_of_lsn(2, parse_lsn("1/FF000000")) == "0000000200000001000000FF"
    assert segment_of_lsn(1, parse_lsn("1/40000000"), 1 << 30) == "000000010000000100000001"
    # The stop LSN exactly on a boundary needs only the previous segment.
    assert last_segment_needed(1, parse_lsn("0/5000000")) == "000000010000000000000004"
    assert last_segment_needed(1, parse_lsn("0/4002188")) == "000000010000000000000004"


def test_segment_arithmetic_crosses_log_boundaries() -> None:
    seg = Segment.parse("0000000100000000000000FF")
    assert seg.next().name() == "000000010000000100000000"
    assert segment_range("0000000100000000000000FE", "000000010000000100000001") == [
        "0000000100000000000000FE",
        "0000000100000000000000FF",
        "000000010000000100000000",
        "000000010000000100000001",
    ]


def test_names_postgres_archives() -> None:
    for name in (
        "000000010000000000000001",
        "000000010000000000000016.partial",
        "000000010000000000000002.00000028.backup",
        "00000002.history",
    ):
        assert is_wal_name(name)
    for name in ("00000001000000000000001", "000000010000000000000001.gz", "x.history"):
        assert not is_wal_name(name)
    assert hash_dir("000000010000000000000016.partial") == "0000000100000000"
    assert hash_dir("00000002.history") is None


def test_history_files() -> None:
    entries = parse_history('# comment\n1\t0/5000EC0\tat restore point "rp1"\n\n')
    assert entries[0].parent_timeline == 1 and format_lsn(entries[0].switch_lsn) == "0/5000EC0"
