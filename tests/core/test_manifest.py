"""backup_manifest as PostgreSQL writes it, and pgvault.json."""

from __future__ import annotations

import hashlib
import json

import pytest

from core.catalog.manifest import (
    ArchiveRecord,
    Crc32c,
    DatabaseRecord,
    FileRecord,
    PgvaultManifest,
    Sha256,
    TableRecord,
    WalRange,
    check_postgres_manifest,
    dump_pgvault,
    load_pgvault,
    postgres_manifest,
)
from core.errors import StorageError

FILES = [
    FileRecord("PG_VERSION", 3, 1795261243.9, "8a744722", "data.tar", 1024),
    FileRecord("pg_tblspc/16384/PG_15_202209061/5/16385", 8192, 0, "00112233", "16384.tar", 512),
]


def test_crc32c_is_stored_in_host_byte_order_as_postgresql_does() -> None:
    # PostgreSQL's manifest lists PG_VERSION "15\n" with checksum 8a744722 (reference §3).
    crc = Crc32c()
    crc.update(b"15")
    crc.update(memoryview(b"\n"))
    assert crc.hexdigest() == "8a744722"
    # Views of a whole bytes object, of part of one, and of a bytearray give the same sum.
    data = b"15\n"
    for pieces in (
        [memoryview(data)],
        [memoryview(data)[:1], memoryview(data)[1:]],
        [memoryview(bytearray(data))],
    ):
        crc = Crc32c()
        for piece in pieces:
            crc.update(piece)
        assert crc.hexdigest() == "8a744722"
    sha = Sha256()
    sha.update(b"15\n")
    assert sha.hexdigest() == hashlib.sha256(b"15\n").hexdigest()


def test_manifest_layout_and_checksum() -> None:
    raw = postgres_manifest(FILES, [WalRange(1, 0x2000028, 0x2000100)], "CRC32C", 150004, "7")
    text = raw.decode()
    assert text.startswith('{ "PostgreSQL-Backup-Manifest-Version": 1,\n"Files": [\n{ "Path": ')
    assert '"Last-Modified": "2026-11-21 ' in text
    assert '{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }' in text
    assert text.endswith('"}\n') and "System-Identifier" not in text
    body = raw[: raw.rstrip(b"\n").rfind(b"\n") + 1]
    assert text.splitlines()[-1] == f'"Manifest-Checksum": "{hashlib.sha256(body).hexdigest()}"}}'
    document = check_postgres_manifest(raw)
    assert [f["Path"] for f in document["Files"]] == [f.path for f in FILES]
    assert next(iter(document)) == "PostgreSQL-Backup-Manifest-Version"
    with pytest.raises(StorageError, match="checksum mismatch"):
        check_postgres_manifest(raw.replace(b'"Size": 3', b'"Size": 4'))


def test_postgresql_17_manifest_is_version_2_with_the_system_identifier() -> None:
    raw = postgres_manifest(FILES, [WalRange(2, 1, 2)], "SHA256", 170002, "7710575559847241500")
    document = check_postgres_manifest(raw)
    assert document["PostgreSQL-Backup-Manifest-Version"] == 2
    assert document["System-Identifier"] == 7710575559847241500
    assert raw.index(b"System-Identifier") < raw.index(b'"Files"')


def test_non_utf8_names_use_encoded_path() -> None:
    raw_name = b"base/5/caf\xe9"
    name = raw_name.decode("utf-8", "surrogateescape")
    raw = postgres_manifest(
        [FileRecord(name, 1, 0, "00", "data.tar", 0)], [WalRange(1, 1, 2)], "CRC32C", 150000, "1"
    )
    assert f'"Encoded-Path": "{raw_name.hex()}"'.encode() in raw


def test_pgvault_json_round_trips() -> None:
    manifest = PgvaultManifest(
        backup_id="20261121T101010",
        server="pg",
        state="done",
        pgvault_version="0.1.0",
        started="2026-11-21T10:10:10+00:00",
        postgres={"version": 150004},
        compression="zstd",
        compression_level=3,
        archives=(ArchiveRecord("data.tar.zst", "data", 0, 10, "aa", 20, 2),),
        files=tuple(FILES),
        databases=(DatabaseRecord("postgres", 5, 100),),
        tables=(TableRecord("postgres", "public", "t", "table", "permanent", 8192, None),),
        excluded={"unlogged relations": 2},
    )
    raw = dump_pgvault(manifest)
    assert json.loads(raw)["format"] == 1
    assert raw.count(b"\n") > len(FILES)  # one record per line
    assert load_pgvault(raw) == manifest
    with pytest.raises(StorageError):
        load_pgvault(b'{"format": 99}')
