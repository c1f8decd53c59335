"""The marker of a killed restore: what a rerun makes of the directory it left."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from core.errors import InputError
from core.restore.request import RestoreRequest
from core.restore.rerun import (
    MARKER,
    RestoreRunning,
    check_same_backup,
    claim,
    continue_killed,
    marked_backup,
    remove_marker,
    write_marker,
)
from core.urls import parse_location


def _request(tmp_path: Path, **changes: object) -> RestoreRequest:
    location = parse_location(f"file://{tmp_path}/dest")
    return RestoreRequest(location, "pg", "latest", str(tmp_path / "data"), **changes)  # type: ignore[arg-type]


def _killed_restores_marker(data: Path, backup_id: str) -> None:
    """What an older pgvault's restore, killed, left: a marker naming no owner."""
    (data / MARKER).write_text(json.dumps({"backup_id": backup_id, "systemid": "7123"}))


def test_a_marked_directory_is_continued_as_a_delta_restore(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    request = _request(tmp_path)
    assert continue_killed(request, str(data)) is request  # nothing marked: as asked
    _killed_restores_marker(data, "20261204T101010")
    continued = continue_killed(request, str(data))
    assert continued.delta and continued.continued
    check_same_backup(str(data), "20261204T101010")
    remove_marker(str(data))
    remove_marker(str(data))  # gone already: nothing to do
    assert marked_backup(str(data)) is None


def test_a_live_restores_marker_is_never_continued(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    held = claim(str(data), {}, sync=False, fresh=True)
    try:
        write_marker(held, "20261204T101010", "7123", sync=True)
        body = json.loads((data / MARKER).read_text())
        assert body["backup_id"] == "20261204T101010" and body["owner"]["pid"] == os.getpid()
        with pytest.raises(RestoreRunning) as refused:
            continue_killed(_request(tmp_path), str(data))
        assert refused.value.exit_code == 1 and "another restore is writing" in str(refused.value)
    finally:
        held.release()


def test_another_backup_is_refused_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _killed_restores_marker(data, "20261204T101010")
    with pytest.raises(InputError) as refused:
        check_same_backup(str(data), "20261204T202020")
    message = str(refused.value)
    assert "\n" not in message and "restore 20261204T101010 again" in message
    assert refused.value.exit_code == 3


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"backup_id": 5}'])
def test_a_marker_that_says_nothing_usable_is_no_marker(tmp_path: Path, body: bytes) -> None:
    (tmp_path / MARKER).write_bytes(body)
    assert marked_backup(str(tmp_path)) is None
