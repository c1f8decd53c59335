"""Session-wide real parts: object-store emulators on loopback, PostgreSQL clusters."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.destinations import STORE_PROVIDERS, TestDestination, make_destination
from tests.support.emulators import Emulator, start_azurite, start_fake_gcs, start_moto
from tests.support.webdav_server import start_nginx_dav, start_wsgidav

pytest_plugins = ["tests.support.pg_fixtures"]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Groups for parallel runs (scripts/test runs one worker per core, --dist loadgroup):
    a test file runs whole on one worker (its module fixtures are built once), and every
    console test on the same one (they share /tmp/pgvault-console-tests and a terminal)."""
    for item in items:
        path = item.path.relative_to(config.rootpath).as_posix()
        group = "tests/tui" if path.startswith("tests/tui/") else path
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session", autouse=True)
def job_store_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Every pgvault a test runs records its jobs here, never in the user's own state dir."""
    path = str(tmp_path_factory.mktemp("pgvault-state"))
    previous = os.environ.get("PGVAULT_STATE_DIR")
    os.environ["PGVAULT_STATE_DIR"] = path
    yield path
    if previous is None:
        os.environ.pop("PGVAULT_STATE_DIR", None)
    else:
        os.environ["PGVAULT_STATE_DIR"] = previous


@pytest.fixture(scope="session")
def emulators() -> Iterator[dict[str, Emulator]]:
    """moto, Azurite, fake-gcs-server, nginx and WsgiDAV (WebDAV), started once, with their client
    environment set."""
    started: dict[str, Emulator] = {}
    try:
        started["s3"] = start_moto()
        started["azure"] = start_azurite()
        started["gcs"] = start_fake_gcs()
        started["http"] = start_nginx_dav().emulator
        started["wsgidav"] = start_wsgidav()
        for emulator in started.values():
            os.environ.update(emulator.env)
        yield started
    finally:
        for emulator in started.values():
            emulator.stop()


@pytest.fixture(params=STORE_PROVIDERS)
def destination(
    request: pytest.FixtureRequest, emulators: dict[str, Emulator]
) -> Iterator[TestDestination]:
    """A fresh destination on each of the five backends in turn (WebDAV on nginx included)."""
    dest = make_destination(request.param, emulators)
    yield dest
    dest.drop()


@pytest.fixture
def make_dest(emulators: dict[str, Emulator]) -> Iterator[object]:
    """Factory for extra destinations on a named backend."""
    made: list[TestDestination] = []

    def factory(
        provider: str, prefix: str = "pfx", create: bool = True, object_lock: bool = False
    ) -> TestDestination:
        dest = make_destination(
            provider, emulators, prefix=prefix, create=create, object_lock=object_lock
        )
        made.append(dest)
        return dest

    yield factory
    for dest in made:
        dest.drop()
