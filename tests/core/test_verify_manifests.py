"""verify compares PostgreSQL's backup_manifest with pgvault.json: both list every file."""

from __future__ import annotations

from dataclasses import replace

from core.catalog.manifest import (
    CRC32C,
    FileRecord,
    WalRange,
    check_postgres_manifest,
    postgres_manifest,
)
from core.verify import manifest_disagreements


def _records() -> dict[str, FileRecord]:
    files = [
        FileRecord("PG_VERSION", 3, 1.7e9, "0a0b0c0d", "data.tar", 0),
        FileRecord("base/1/1259", 8192, 1.7e9, "11223344", "data.tar", 512),
        FileRecord("pg_tblspc/16384/PG_15/5/16385", 8192, 1.7e9, "55667788", "16384.tar", 512),
    ]
    return {f.path: f for f in files}


def _document(records: dict[str, FileRecord]) -> dict[str, object]:
    raw = postgres_manifest(
        records.values(), [WalRange(1, 0x5000028, 0x5000100)], CRC32C, 150018, "7"
    )
    return check_postgres_manifest(raw)


def test_the_same_files_agree() -> None:
    records = _records()
    assert manifest_disagreements(_document(records), records) == []


def test_a_different_checksum_a_missing_and_an_extra_file_are_each_named() -> None:
    records = _records()
    written = dict(records)
    written["base/1/1259"] = replace(records["base/1/1259"], checksum="deadbeef")
    del written["PG_VERSION"]
    written["base/1/9999"] = FileRecord("base/1/9999", 1, 1.7e9, "00000000", "data.tar", 9)
    problems = manifest_disagreements(_document(written), records)
    assert problems == [
        "base/1/1259: size 8192 and checksum deadbeef here, 8192 and 11223344 in pgvault.json",
        "base/1/9999 is listed, but not in pgvault.json",
        "PG_VERSION is in pgvault.json, not listed here",
    ]
