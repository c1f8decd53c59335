"""The store tests run on every backend, WebDAV (nginx) included."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.destinations import STORE_PROVIDERS, TestDestination, make_destination
from tests.support.emulators import Emulator


@pytest.fixture(params=STORE_PROVIDERS)
def destination(
    request: pytest.FixtureRequest, emulators: dict[str, Emulator]
) -> Iterator[TestDestination]:
    """A fresh destination on each of the five backends in turn."""
    dest = make_destination(request.param, emulators)
    yield dest
    dest.drop()
