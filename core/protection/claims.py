"""A slot's claim: who holds it, its heartbeat, and taking over one whose holder is gone.

A claimed run record names its holder as a backup's lease names its owner (host, machine
and boot IDs, PID namespace, PID and its start time, a token: core.catalog.owner), and the
holder rewrites the record every RENEW_SECONDS while the backup runs, so the store's
modification time is its heartbeat. A claim is abandoned when owner.judge proves its holder
gone: its process ended on this machine (or the machine rebooted), or no heartbeat for
TIMEOUT_SECONDS (any host; a record without an owner, from an older pgvault, only so). The
next pass takes it over, once: the agent that wins the marker named after the holder's
token (VaultStore.claim_takeover, a conditional write) rewrites the record as its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from core.catalog.owner import RENEW_SECONDS, TIMEOUT_SECONDS, judge, renewing, this_process
from core.errors import PgvaultError
from core.protection.model import RunRecord, RunState, utc_text
from core.protection.vaultstore import VaultStore
from core.storage import open_store

if TYPE_CHECKING:
    from core.protection.service import OpenVault

log = logging.getLogger("pgvault.protection")


def new_owner() -> dict[str, Any]:
    """This process as the holder of a claim, with the heartbeat timeout others judge by."""
    return {**this_process(), "timeout": TIMEOUT_SECONDS}


def abandoned_reason(vaults: VaultStore, record: RunRecord) -> str | None:
    """Why a claimed run's holder is provably gone, or None (ended, or still held)."""
    if record.state is not RunState.CLAIMED:
        return None
    verdict = judge(dict(record.owner or {}), vaults.run_heartbeat(record))
    return verdict.reason if verdict.abandoned else None


def take_over(vaults: VaultStore, record: RunRecord, reason: str, who: str) -> RunRecord | None:
    """The abandoned claim made this agent's (recorded), or None when another agent took it."""
    token = str((record.owner or {}).get("token") or "unknown")
    if not vaults.claim_takeover(record, token):
        return None
    log.warning(
        "%s: slot %s was claimed by %s, which is gone (%s): taking it over",
        record.instance,
        utc_text(record.slot),
        record.claimed_by,
        reason,
    )
    taken = replace(
        record,
        state=RunState.CLAIMED,  # an interrupted run (released, FAILED) runs again
        claimed_by=who,
        owner=new_owner(),
        abandoned=f"claimed by {record.claimed_by}: {reason}",
        job_id=None,
        backup_id=None,
        finished=None,
        error=None,
        interrupted=None,
        copy_interrupted=None,
        copy_started=None,
    )
    vaults.update_run(taken)
    return taken


#: the thread that renews a claim: its lines are the agent's, never a job's
CLAIM_THREAD = "pgvault-claim"


@contextmanager
def heartbeat(vault: OpenVault, record: RunRecord) -> Iterator[None]:
    """Renew the claim's record every RENEW_SECONDS for the block (its holder is alive)."""
    with renewing(partial(_renew, vault, record), CLAIM_THREAD):
        yield


def _renew(vault: OpenVault, record: RunRecord, stop: threading.Event) -> None:
    token = (record.owner or {}).get("token")
    try:
        own = open_store(vault.location, vault.config)  # the agent's store is not shared
    except PgvaultError as exc:
        log.warning("cannot renew the claim of slot %s: %s", utc_text(record.slot), exc)
        return
    with own:
        vaults = VaultStore(own, vault.store.name)
        while not stop.wait(RENEW_SECONDS):
            try:
                current = vaults.get_run(record.instance, record.slot, record.trigger)
                if (current.owner or {}).get("token") != token:
                    log.error("the claim of slot %s was taken over", utc_text(record.slot))
                    return
                vaults.update_run(record)
            except PgvaultError as exc:  # retried at the next tick; the timeout is 30 of them
                log.warning("could not renew the claim of slot %s: %s", utc_text(record.slot), exc)


__all__ = ["CLAIM_THREAD", "abandoned_reason", "heartbeat", "new_owner", "take_over"]
