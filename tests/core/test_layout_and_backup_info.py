"""Keys and backup.info exactly as barman-cloud writes and reads them."""

import pytest

from core.catalog.backup_info import BackupInfo, Tablespace, parse, serialize
from core.catalog.layout import ArchiveRef, ServerLayout, parse_archive_name, validate_backup_name
from core.codecs import CODECS
from core.errors import InputError

# A backup.info written by barman-cloud-backup 3.19.1 (trimmed paths).
# ruff: noqa: E501
BARMAN_INFO = b"""backup_label='START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\\nCHECKPOINT LOCATION: 0/2000060\\nBACKUP METHOD: streamed\\nBACKUP FROM: primary\\nSTART TIME: 2026-11-21 11:18:42 UTC\\nLABEL: Barman backup cloud 20261121T111839\\nSTART TIMELINE: 1\\n'
backup_name=nightly
begin_offset=40
begin_time=2026-11-21 11:18:39.437165+00:00
begin_wal=000000010000000000000002
begin_xlog=0/2000028
children_backup_ids=None
cluster_size=23203529
compression=None
config_file=/pg/data/postgresql.conf
copy_stats={'total_time': 5.484878, 'number_of_workers': 2, 'copy_time': 0.122017}
data_checksums=off
deduplicated_size=None
encryption=None
end_offset=256
end_time=2026-11-21 11:18:44.749705+00:00
end_wal=000000010000000000000002
end_xlog=0/2000100
error=None
hba_file=/pg/data/pg_hba.conf
ident_file=/pg/data/pg_ident.conf
included_files=['/pg/data/postgresql.auto.conf']
mode=None
parent_backup_id=None
pgdata=/pg/data
server_name=cloud
size=None
status=DONE
summarize_wal=None
systemid=7710582635980450813
tablespaces=[('ts1', 16384, '/pg/ts1')]
timeline=1
version=150018
xlog_segment_size=16777216
"""


def test_barman_backup_info_round_trips_byte_for_byte() -> None:
    info = parse("20261121T111839", BARMAN_INFO)
    assert info.status == "DONE" and info.is_done
    assert info.tablespaces == (Tablespace("ts1", 16384, "/pg/ts1"),)
    assert info.begin_time is not None and info.begin_time.tzinfo is not None
    assert info.backup_label is not None and info.backup_label.startswith("START WAL LOCATION")
    assert info.copy_stats == {
        "total_time": 5.484878,
        "number_of_workers": 2,
        "copy_time": 0.122017,
    }
    assert serialize(info) == BARMAN_INFO


def test_unknown_fields_survive_and_null_names_are_hidden() -> None:
    info = parse("20260101T000000", b"status=STARTED\nfuture_field=42\n")
    assert info.extra == {"future_field": "42"}
    text = serialize(info).decode()
    assert "future_field=42" in text and "backup_name" not in text


def test_archive_names() -> None:
    assert parse_archive_name("data.tar") == ArchiveRef("data", 0, None)
    assert parse_archive_name("data_0002.tar.zst") == ArchiveRef("data", 2, CODECS["zstd"])
    assert parse_archive_name("16384_0001.tar.gz") == ArchiveRef("16384", 1, CODECS["gzip"])
    assert parse_archive_name("backup.info") is None
    assert parse_archive_name("pgvault.json") is None
    assert ArchiveRef("16384", 3, CODECS["lz4"]).filename() == "16384_0003.tar.lz4"


def test_server_layout_keys() -> None:
    layout = ServerLayout("pg1")
    assert layout.backup_info("20261121T091524") == "pg1/base/20261121T091524/backup.info"
    assert layout.wal("000000010000000000000014", CODECS["gzip"]) == (
        "pg1/wals/0000000100000000/000000010000000000000014.gz"
    )
    assert layout.wal("00000002.history", CODECS["zstd"]) == "pg1/wals/00000002.history.zst"
    key = "pg1/wals/0000000100000000/000000010000000000000006.00000028.backup.gz"
    assert layout.parse_wal(key) == ("000000010000000000000006.00000028.backup", CODECS["gzip"])
    assert layout.parse_wal("pg1/wals/0000000100000000/garbage") is None
    assert layout.backup_id_of("pg1/base/20261121T091524/data.tar") == "20261121T091524"


@pytest.mark.parametrize("name", ["latest", "20261121T091524", " "])
def test_backup_names_must_not_look_like_ids_or_reserved_words(name: str) -> None:
    with pytest.raises(InputError):
        validate_backup_name(name)


def test_backup_info_defaults() -> None:
    assert BackupInfo("x").status == "EMPTY"


@pytest.mark.parametrize(
    "name", ["a\nb", "tab\there", "x" * 256, "é" * 128, "nul\x00", "bad\udcffbyte", "l\u2028s"]
)
def test_names_that_break_a_line_or_a_key_are_refused(name: str) -> None:
    with pytest.raises(InputError):
        validate_backup_name(name)
    with pytest.raises(InputError):
        ServerLayout(name)


def test_names_barman_cloud_takes_are_kept() -> None:
    for name in ("nightly", "before upgrade", "pg-main_2026.11", "x" * 255, "ü" * 127):
        assert validate_backup_name(name) == name
        assert ServerLayout(name).server == name


@pytest.mark.parametrize("field", ["backup_name", "server_name", "error"])
def test_backup_info_never_writes_a_value_over_two_lines(field: str) -> None:
    """The last guard: whatever reached a BackupInfo, backup.info keeps one line per key."""
    info = BackupInfo("20261121T091524", **{field: "one\nstatus=DONE"})
    with pytest.raises(InputError, match=field):
        serialize(info)
    with pytest.raises(InputError, match="extra"):
        serialize(BackupInfo("20261121T091524", extra={"extra": "a\rb"}))
