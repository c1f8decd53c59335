"""Console tests: an isolated, fixed world (paths, time zone, no demo, no keymap)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.console import fill_store, write_catalog

#: fixed paths: the catalog shows them, and a snapshot must not change with tmp_path
FIXED = Path("/tmp/pgvault-console-tests")
CATALOG_URL = f"file://{FIXED / 'catalog'}"


@pytest.fixture(autouse=True)
def console_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Local time is UTC; the default destination and the demo are private to the test."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setenv("XDG_DATA_HOME", str(FIXED / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(FIXED / "config"))  # the help names it
    monkeypatch.setenv("PGVAULT_DEMO_DIR", str(tmp_path / "demo"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    shutil.rmtree(FIXED, ignore_errors=True)
    FIXED.mkdir(parents=True)
    yield FIXED
    shutil.rmtree(FIXED, ignore_errors=True)
    time.tzset()


@pytest.fixture
def fixed_state(tmp_path: Path) -> str:
    """A job store holding the fixed rows of tests.support.console."""
    state = str(tmp_path / "state")
    fill_store(state)
    return state


@pytest.fixture
def fixed_catalog(console_world: Path) -> str:
    write_catalog(console_world / "catalog")
    return CATALOG_URL


@pytest.fixture
def chain_catalog(console_world: Path) -> str:
    """The fixed catalog with two incrementals and a differential on its second backup."""
    write_catalog(console_world / "catalog", chains=True)
    return CATALOG_URL
