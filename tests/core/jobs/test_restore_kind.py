"""The restore job kind: its stored request has no credentials; it is not resumable."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.jobs import load_kind
from core.jobs.kinds import decode_request, encode_request
from core.restore import RestoreRequest, make_target
from core.restore.job import RESTORE
from core.storage import StoreConfig
from core.urls import parse_location


def test_the_stored_request_has_no_credentials() -> None:
    request = RestoreRequest(
        location=parse_location(
            "s3://bucket/pfx?AWS_ACCESS_KEY_ID=id&AWS_SECRET_ACCESS_KEY=sekritsekrit"
        ),
        server="pg-main",
        backup="latest",
        recovery_dir="/srv/pg/data",
        store_config=StoreConfig(endpoint_url="http://127.0.0.1:9000", jobs=6),
        tablespaces=(("ts1", "/srv/ts1"),),
        target=make_target(time="2026-01-01 10:00:00+00:00", action="promote"),
        pgvault_command="/opt/pgvault/bin/pgvault",
    )
    assert load_kind("restore") is RESTORE and RESTORE.resume is None
    options = RESTORE.options(request)
    assert "sekritsekrit" not in str(options)
    stored = RESTORE.decode(options)
    assert stored.location.credentials.is_empty()
    assert stored.target == request.target and stored.tablespaces == request.tablespaces
    # The worker gets the whole request through a pipe, credentials included.
    assert decode_request(RESTORE, encode_request(RESTORE, request)) == request
    info = RESTORE.describe(request)
    assert (info.server, info.destination) == ("pg-main", "s3://bucket/pfx")
    assert "/srv/pg/data" in info.description


def test_a_failed_restore_is_run_again_not_resumed(tmp_path: Path) -> None:
    from core.jobs import JobState, JobStore
    from core.jobs.model import IllegalTransition
    from core.jobs.runner import resume_request

    with JobStore(tmp_path / "jobs.db") as store:
        job = store.create(RESTORE.name, state=JobState.RUNNING, entry=RESTORE.entry, options={})
        store.transition(job.id, JobState.FAILED, error="disk full")
        with pytest.raises(IllegalTransition, match="run the same restore command again: a killed"):
            resume_request(store, job.id)
