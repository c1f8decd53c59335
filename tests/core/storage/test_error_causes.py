"""An error raised while another is being handled is classified by its own cause (issue 22).

Requests go through a fault-injecting proxy to the real emulators; each store call is made
inside an `except` block for an earlier storage error, as the archiver's identity check
after a 412 and a failed backup's cleanup make them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.errors import ObjectExists, ObjectNotFound, StorageError
from core.storage.retry import RetryPolicy
from tests.support.destinations import TestDestination
from tests.support.emulators import Emulator
from tests.support.fault_proxy import (
    Fault,
    FaultProxy,
    Script,
    Step,
    anything,
    is_listing,
    is_object_write,
    through_proxy,
)

FAST = RetryPolicy(attempts=4, base=0.01, cap=0.05)


@pytest.fixture(params=["s3", "azure", "gcs"])
def faulty(
    request: pytest.FixtureRequest,
    make_dest: object,
    emulators: dict[str, Emulator],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[TestDestination, Script]]:
    """A destination whose store goes through a proxy running a script the test fills in."""
    dest = make_dest(request.param)  # type: ignore[operator]
    script = Script([])
    with FaultProxy(emulators[request.param].port, script) as proxy:
        via = through_proxy(dest, emulators, proxy)
        for name, value in via.env.items():
            monkeypatch.setenv(name, value)
        yield via, script


def test_a_transient_error_met_while_handling_another_is_retried(
    faulty: tuple[TestDestination, Script],
) -> None:
    dest, script = faulty
    with dest.store(retry=FAST) as store:
        store.put_bytes("seen/one", b"one")
        script.steps += [Step(is_listing, Fault.UNAVAILABLE), Step(is_listing, Fault.RESET)]
        script.steps += [Step(is_object_write, Fault.UNAVAILABLE)]
        try:
            raise ObjectExists("put seen/one: object already exists")
        except ObjectExists:
            listed = [info.key for info in store.list_objects("seen/")]
            store.put_bytes("seen/two", b"two")
        assert script.done
        assert listed == ["seen/one"]
        assert store.get_bytes("seen/two") == b"two"


def test_a_permanent_error_met_while_handling_another_names_its_own_cause(
    faulty: tuple[TestDestination, Script],
) -> None:
    dest, script = faulty
    with dest.store(retry=FAST) as store:
        script.steps.append(Step(anything, Fault.PASS, times=0))
        try:
            raise StorageError("upload part 3 of base/data.tar: InternalError")
        except StorageError:
            with pytest.raises(ObjectNotFound) as caught:
                store.get_bytes("never/written")
        assert "never/written" in str(caught.value)
        assert "part 3" not in str(caught.value)
