"""pg_control read by its version, on the files initdb of every supported major writes."""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import google_crc32c
import pytest

from core.errors import ExitCode, IntegrityError, OperationFailed
from core.postgres.control import (
    LAYOUTS,
    PG_CONTROL,
    ControlFileDamaged,
    ControlFileTooShort,
    DBState,
    UnsupportedControlFile,
    check_restored_control,
    crc_ok,
    parse_control,
    peek_control,
    peek_system_identifier,
    read_control,
)
from tests.support.pg_versions import (
    MAJORS,
    initdb_only,
    tool_env,
    verifybackup_bindir,
)
from tests.support.postgres import as_postgres

MiB = 1024 * 1024
CONTROL_VERSION = {13: 1300, 14: 1300, 15: 1300, 16: 1300, 17: 1700, 18: 1800}


@pytest.fixture(scope="module", params=MAJORS)
def initdb_dir(request: pytest.FixtureRequest) -> Iterator[tuple[int, str]]:
    """A data directory of each major: 32 MiB WAL segments, data checksums on."""
    major: int = request.param
    # 18's initdb enables data checksums by default; older ones need -k.
    args = ["--wal-segsize=32"] + (["--data-checksums"] if major < 18 else [])
    data = initdb_only(major, *args)
    yield major, data
    shutil.rmtree(os.path.dirname(data), ignore_errors=True)


def _controldata(major: int, data: str) -> dict[str, str] | None:
    """pg_controldata's fields for `data`, when that major's tool is installed."""
    bindir = verifybackup_bindir(major)
    if bindir is None or not os.path.exists(os.path.join(bindir, "pg_controldata")):
        return None
    out = as_postgres(
        [os.path.join(bindir, "pg_controldata"), "-D", data],
        env={"LC_ALL": "C", **tool_env(bindir)},
    ).stdout
    return dict(line.split(":", 1) for line in out.splitlines() if ":" in line)


def test_every_major_reads_with_its_layout(initdb_dir: tuple[int, str]) -> None:
    major, data = initdb_dir
    control, st = read_control(data)
    raw = Path(data, PG_CONTROL).read_bytes()
    assert control.raw == raw and st.st_size == 8192
    assert control.pg_control_version == CONTROL_VERSION[major]
    assert control.major == major == int(Path(data, "PG_VERSION").read_text())
    assert control.state is DBState.SHUT_DOWN
    assert control.timeline == control.prev_timeline == 1
    assert 0 < control.redo_lsn <= control.checkpoint_lsn
    assert control.wal_segment_size == 32 * MiB
    assert control.block_size == control.wal_block_size == 8192
    assert control.relseg_size == 131072
    assert control.data_checksum_version == 1 and control.data_checksums
    assert control.system_identifier == peek_system_identifier(data)
    assert peek_control(data) == control
    # Only this major's layout has the CRC where it looks: 18 moved it.
    others = {v.crc_offset for v in LAYOUTS.values()} - {LAYOUTS[CONTROL_VERSION[major]].crc_offset}
    for offset in others:
        assert google_crc32c.value(raw[:offset]) != struct.unpack_from("<I", raw, offset)[0]


def test_fields_match_pg_controldata(initdb_dir: tuple[int, str]) -> None:
    major, data = initdb_dir
    fields = _controldata(major, data)
    if fields is None:  # pg_controldata of 15 to 18 is installed, none of 13 or 14
        return
    control = parse_control(Path(data, PG_CONTROL).read_bytes())
    lsn = fields["Latest checkpoint's REDO location"].strip().split("/")
    assert control.redo_lsn == (int(lsn[0], 16) << 32) | int(lsn[1], 16)
    assert str(control.system_identifier) == fields["Database system identifier"].strip()
    assert str(control.catalog_version) == fields["Catalog version number"].strip()
    assert str(control.wal_segment_size) == fields["Bytes per WAL segment"].strip()
    assert str(control.data_checksum_version) == fields["Data page checksum version"].strip()


def test_postgresql_18_turns_data_checksums_on_by_default() -> None:
    data = initdb_only(18)
    try:
        assert parse_control(Path(data, PG_CONTROL).read_bytes()).data_checksums
    finally:
        shutil.rmtree(os.path.dirname(data), ignore_errors=True)
    data = initdb_only(18, "--no-data-checksums")
    try:
        assert not parse_control(Path(data, PG_CONTROL).read_bytes()).data_checksums
    finally:
        shutil.rmtree(os.path.dirname(data), ignore_errors=True)


def _control(version: int, crc_offset: int = 288, sysid: int = 7) -> bytes:
    head = bytearray(crc_offset)
    struct.pack_into("<QII", head, 0, sysid, version, 202509999)
    crc = struct.pack("<I", google_crc32c.value(bytes(head)))
    return bytes(head) + crc + bytes(8192 - crc_offset - 4)


def test_a_future_version_is_refused_by_name_not_called_damaged(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedControlFile, match="pg_control_version 1900, newer") as exc:
        parse_control(_control(1900, 296))
    assert exc.value.exit_code == ExitCode.FAILED
    assert isinstance(exc.value, OperationFailed)
    assert not isinstance(exc.value, ControlFileDamaged)
    assert "PostgreSQL 13 to 18" in str(exc.value)
    (tmp_path / "global").mkdir()
    (tmp_path / PG_CONTROL).write_bytes(_control(1900, 296))
    with pytest.raises(UnsupportedControlFile, match="1900"):
        read_control(str(tmp_path))


def test_a_version_older_than_13_is_refused() -> None:
    with pytest.raises(UnsupportedControlFile, match="pg_control_version 1201, from a PostgreSQL"):
        parse_control(_control(1201))


def test_damage_is_damage() -> None:
    good = _control(1800, 292)
    assert parse_control(good).major == 18
    with pytest.raises(ControlFileDamaged, match="invalid checksum"):
        parse_control(good[:20] + b"\x01" + good[21:])
    with pytest.raises(ControlFileDamaged, match="invalid checksum"):
        parse_control(_control(1800, 288))  # a 17-style CRC place in an 18 file
    assert not crc_ok(_control(1800, 288), LAYOUTS[1800])
    with pytest.raises(ControlFileTooShort):
        parse_control(good[:100])
    with pytest.raises(ControlFileDamaged, match="no known pg_control_version"):
        parse_control(bytes(8192))


def test_read_control_calls_a_bad_crc_damaged_after_retries(tmp_path: Path) -> None:
    (tmp_path / "global").mkdir()
    bad = bytearray(_control(1300))
    bad[100] ^= 0xFF
    (tmp_path / PG_CONTROL).write_bytes(bytes(bad))
    with pytest.raises(OperationFailed, match="invalid checksum: the control file is damaged"):
        read_control(str(tmp_path))


def test_the_restored_control_file_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "pg_control.pending"
    with pytest.raises(IntegrityError, match="backup B holds no global/pg_control"):
        check_restored_control(str(path), "B", "7")
    path.write_bytes(_control(1700)[:200])
    with pytest.raises(IntegrityError, match=r"^the restored global/pg_control is too short$"):
        check_restored_control(str(path), "B", "7")
    path.write_bytes(_control(1800, 288))
    with pytest.raises(IntegrityError, match=r"^the restored global/pg_control has an invalid"):
        check_restored_control(str(path), "B", "7")
    path.write_bytes(_control(1800, 292))
    with pytest.raises(IntegrityError, match=r"belongs to system 7, backup\.info says 8"):
        check_restored_control(str(path), "B", "8")
    assert check_restored_control(str(path), "B", "7").major == 18
    assert check_restored_control(str(path), "B", "").system_identifier == 7


def test_peek_control_is_none_without_a_sound_control_file(tmp_path: Path) -> None:
    assert peek_control(str(tmp_path)) is None  # no PG_VERSION: not a data directory
    (tmp_path / "PG_VERSION").write_text("18\n")
    assert peek_control(str(tmp_path)) is None  # no pg_control
    (tmp_path / "global").mkdir()
    (tmp_path / PG_CONTROL).write_bytes(_control(1800, 288))
    assert peek_control(str(tmp_path)) is None  # damaged
    (tmp_path / PG_CONTROL).write_bytes(_control(1900, 296))
    assert peek_control(str(tmp_path)) is None  # unknown version
    (tmp_path / PG_CONTROL).write_bytes(_control(1800, 292))
    peeked = peek_control(str(tmp_path))
    assert peeked is not None and peeked.major == 18
