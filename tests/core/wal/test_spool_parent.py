"""The async archive spool is refused (exit 3, naming the directory) when its parent is one
another user could tamper with: writable by others without the sticky bit, or owned by
another user. /tmp-like parents (sticky) and the user's own are accepted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.errors import ExitCode, InputError
from core.wal.spool import ArchiveSpool
from tests.support.postgres import ensure_postgres_user


def _spool(parent: Path) -> ArchiveSpool:
    return ArchiveSpool(str(parent / "pg1.0123456789ab"))


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_parent_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    parent = tmp_path / "spools"
    parent.mkdir()
    parent.chmod(mode)
    with pytest.raises(InputError) as raised:
        _spool(parent).prepare()
    assert raised.value.exit_code == ExitCode.INPUT
    assert str(parent) in str(raised.value) and "writable by other users" in str(raised.value)
    assert not (parent / "pg1.0123456789ab").exists()


def test_a_parent_another_user_owns_is_refused(tmp_path: Path) -> None:
    parent = tmp_path / "spools"
    parent.mkdir(mode=0o755)
    other = ensure_postgres_user()
    if os.geteuid() == other.pw_uid:  # running as postgres: root's directory is trusted
        pytest.fail("run the tests as root (scripts/test does), not as postgres")
    os.chown(parent, other.pw_uid, other.pw_gid)
    with pytest.raises(InputError) as raised:
        _spool(parent).prepare()
    assert str(parent) in str(raised.value) and "owned by another user" in str(raised.value)


@pytest.mark.parametrize("mode", [0o1777, 0o700])
def test_a_sticky_or_private_parent_is_accepted(tmp_path: Path, mode: int) -> None:
    parent = tmp_path / "spools"
    parent.mkdir()
    parent.chmod(mode)
    spool = _spool(parent)
    spool.prepare()
    assert os.path.isdir(spool.ok_dir)


def test_a_missing_parent_is_created_private(tmp_path: Path) -> None:
    spool = _spool(tmp_path / "new" / "spools")
    spool.prepare()
    assert (tmp_path / "new" / "spools").stat().st_mode & 0o777 == 0o700
