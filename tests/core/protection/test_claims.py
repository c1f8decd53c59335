"""A claim whose holder is provably gone is taken over once, by the agent that wins the
conditional write; a claim held by a live process, or already taken over, is left alone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from core.protection.claims import abandoned_reason, new_owner, take_over
from core.protection.model import RunRecord, RunState, RunTrigger
from core.protection.vaultstore import VaultStore
from tests.core.protection.test_vaultstore import filled
from tests.support.destinations import TestDestination

SLOT = datetime(2026, 3, 29, 1, tzinfo=UTC)


def claimed(owner: dict[str, object] | None) -> RunRecord:
    return RunRecord(
        "empdb11", SLOT, "BackupWeekly", RunTrigger.SCHEDULED, RunState.CLAIMED, "host-x:41",
        "Default", owner=owner,
    )  # fmt: skip


@pytest.mark.parametrize("provider", ["file", "s3"])
def test_an_abandoned_claim_is_taken_over_once(
    make_dest: Callable[..., TestDestination], provider: str
) -> None:
    with make_dest(provider).store() as store:
        vaults = filled(store)
        # another host's holder that stopped renewing the record (a timeout of 0 s is past)
        record = claimed({"host": "host-x", "pid": 41, "timeout": 0, "token": "t-41"})
        assert vaults.claim_run(record)
        reason = abandoned_reason(vaults, record)
        assert reason is not None and reason.startswith("pgvault on host-x has not renewed")

        taken = take_over(vaults, record, reason, "agent-a:1")
        # a second agent that judged the same claim abandoned loses the conditional write
        assert take_over(VaultStore(store, "TestBkpVault"), record, reason, "agent-b:2") is None
        assert taken is not None
        (stored,) = vaults.runs("empdb11")  # the takeover's marker is not a run record
        assert (stored.state, stored.claimed_by) == (RunState.CLAIMED, "agent-a:1")
        assert stored.abandoned == f"claimed by host-x:41: {reason}"
        assert stored.owner is not None and stored.owner["token"] != "t-41"
        # its new holder is this live process: nothing to take over any more
        assert abandoned_reason(vaults, stored) is None


@pytest.mark.parametrize("provider", ["file"])
def test_a_live_holder_or_an_ended_run_is_not_abandoned(
    make_dest: Callable[..., TestDestination], provider: str
) -> None:
    with make_dest(provider).store() as store:
        vaults = filled(store)
        live = claimed(new_owner())  # this process, on this machine
        assert vaults.claim_run(live)
        assert abandoned_reason(vaults, live) is None
        # an older pgvault's claim names no owner: only a 30-minute silence proves it gone
        legacy = claimed(None)
        vaults.update_run(legacy)
        assert abandoned_reason(vaults, legacy) is None
        ended = RunRecord(**{**legacy.__dict__, "state": RunState.FAILED})
        assert abandoned_reason(vaults, ended) is None
