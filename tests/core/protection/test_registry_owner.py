"""vaults.json, written by root into a state directory postgres owns, stays postgres's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.protection.registry import Registry, VaultEntry
from tests.support.postgres import ensure_postgres_user


@pytest.mark.skipif(os.geteuid() != 0, reason="only root gives the files it makes away")
def test_root_writing_the_registry_in_postgres_state_directory_leaves_it_postgres(
    tmp_path: Path,
) -> None:
    pg = ensure_postgres_user()
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, pg.pw_uid, pg.pw_gid)
    Registry(str(state)).add(VaultEntry("vault1", "file:///srv/vault1"))
    written = os.stat(state / "vaults.json")
    assert (written.st_uid, written.st_mode & 0o777) == (pg.pw_uid, 0o600)
    assert [e.name for e in Registry(str(state)).entries()] == ["vault1"]
