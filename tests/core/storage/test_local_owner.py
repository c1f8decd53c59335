"""A local store writes with its root's owner and modes from the root's (core.storage.local_owner),
so that a run as root leaves nothing the directory's owner cannot read, replace or delete."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from collections.abc import Iterator

import pytest

from core.storage import PutOptions, StoreConfig, open_store
from core.urls import parse_location
from tests.support.postgres import PG_USER, ensure_postgres_user, world_dir


@pytest.fixture
def owned_root() -> Iterator[str]:
    ensure_postgres_user()
    root = world_dir("pgvault-owner-")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _modes(root: str) -> dict[str, tuple[int, int]]:
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = os.path.join(directory, name)
            st = os.stat(path)
            found[os.path.relpath(path, root)] = (st.st_uid, stat.S_IMODE(st.st_mode))
    return found


@pytest.mark.parametrize(
    ("root_mode", "file_mode", "dir_mode"),
    [(0o755, 0o640, 0o750), (0o770, 0o660, 0o770), (0o700, 0o600, 0o700)],
)
def test_objects_take_the_root_owner_and_modes_without_other(
    owned_root: str, root_mode: int, file_mode: int, dir_mode: int
) -> None:
    assert os.geteuid() == 0  # giving files away needs root; the test runner is root
    os.chmod(owned_root, root_mode)
    postgres = pwd.getpwnam(PG_USER).pw_uid
    with open_store(parse_location(f"file://{owned_root}"), StoreConfig()) as store:
        store.put_bytes("pg1/base/B1/backup.info", b"status=DONE\n")
        store.put_bytes("pg1/base/B1/data.tar", b"x" * 10, PutOptions(tags=(("k", "v"),)))
        with store.open_writer("pg1/wals/0000000100000000/000000010000000000000001") as w:
            w.write(b"w" * 100)
    modes = _modes(owned_root)
    assert "pg1/base/B1/.data.tar.pgvault-meta" in modes  # the tags' sidecar too
    for path, (uid, mode) in modes.items():
        is_dir = os.path.isdir(os.path.join(owned_root, path))
        assert (uid, mode) == (postgres, dir_mode if is_dir else file_mode), path


def test_a_root_made_by_a_run_as_root_is_its_parents_owners(owned_root: str) -> None:
    """A backup run as root before the archiver ever wrote makes the store's root: it is the
    parent's owner's (postgres), so archive_command can write beside it."""
    assert os.geteuid() == 0
    os.chmod(owned_root, 0o755)
    postgres = pwd.getpwnam(PG_USER).pw_uid
    url = f"file://{owned_root}/pfx/deeper"
    with open_store(parse_location(url), StoreConfig()) as store:
        store.put_bytes("pg1/base/B1/backup.info", b"status=DONE\n")
    for made in ("pfx", "pfx/deeper", "pfx/deeper/pg1"):
        st = os.stat(os.path.join(owned_root, made))
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (postgres, 0o750), made
