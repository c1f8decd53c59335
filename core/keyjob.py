"""The `keys` job kind: every change of a server's key file (init, rotate, rewrap) is a job.

Its record is the audit trail of the server's keys: what changed (action, generation,
operator recipients added or removed by their public age1... strings, what happened to the
passphrase wrap) and one log line saying so. A module of its own, as each kind is, so that the
other kinds never load `cryptography`.
"""

from __future__ import annotations

from core.crypto import KeyFile
from core.crypto.keyfile import PASSPHRASE, RECIPIENTS
from core.jobs.kinds import JobInfo, JobKind
from core.jobs.results import KeysJobResult
from core.keyring import KeysRequest, change_keys, describe, validate_request
from core.progress import Reporter
from core.storage import open_store


def _run(request: KeysRequest, reporter: Reporter) -> KeysJobResult:
    reporter.phase(f"keys {request.action}")
    with open_store(request.location, request.store_config) as store:
        before, after = change_keys(store, request)
    result = keys_result(request, before, after)
    reporter.log(result.summary)
    return result


def _recipients(keyfile: KeyFile | None) -> list[str]:
    wrap = keyfile.wrap(RECIPIENTS) if keyfile is not None else None
    return [str(r) for r in wrap.recipients] if wrap is not None else []


def _passphrase(request: KeysRequest, before: KeyFile | None, after: KeyFile) -> str:
    had = before is not None and before.wrap(PASSPHRASE) is not None
    if after.wrap(PASSPHRASE) is None:
        return "removed" if had else "none"
    if not had:
        return "set"
    return "changed" if request.new_passphrase is not None else "kept"


def keys_result(request: KeysRequest, before: KeyFile | None, after: KeyFile) -> KeysJobResult:
    """What the change did, in public terms only."""
    old, new = _recipients(before), _recipients(after)
    added = tuple(r for r in new if r not in old)
    removed = tuple(r for r in old if r not in new)
    passphrase = _passphrase(request, before, after)
    generation = after.generations[-1].number
    parts = [f"data key generation {generation}", f"passphrase {passphrase}"]
    parts += [f"recipient added {r}" for r in added]
    parts += [f"recipient removed {r}" for r in removed]
    return KeysJobResult(
        server=request.server,
        action=request.action,
        generation=generation,
        recipients_added=added,
        recipients_removed=removed,
        passphrase_wrap=passphrase,
        lines=tuple(describe(after)),
        summary=f"keys {request.action} of server {request.server}: " + ", ".join(parts),
    )


def _describe(request: KeysRequest) -> JobInfo:
    where = request.location.display()
    return JobInfo(
        description=f"keys {request.action} of {request.server} in {where}",
        server=request.server,
        destination=where,
    )


KEYS: JobKind[KeysRequest] = JobKind(
    name="keys",
    request_type=KeysRequest,
    run=_run,
    describe=_describe,
    entry="core.keyjob:KEYS",
    public=KeysRequest.public,
    instead_of_resume="run the keys command again (a key change is one write)",
    validate=validate_request,
)
