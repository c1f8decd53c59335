"""Which jobs the console's `r` (retry) resumes in a new job: those `jobs resume` resumes."""

from __future__ import annotations

import pytest

from core.jobs.model import Job, JobState
from tui.screens.jobs import job_action_allowed


@pytest.mark.parametrize(
    "kind, state, allowed",
    [
        ("backup", JobState.FAILED, True),
        ("backup", JobState.CANCELLED, False),  # a physical backup's cancel is final
        ("logical-backup", JobState.FAILED, True),
        ("logical-backup", JobState.CANCELLED, True),  # taken again under its ID
        ("logical-backup", JobState.RUNNING, False),
        ("logical-backup", JobState.SUCCEEDED, False),
        ("logical-restore", JobState.FAILED, False),
        ("restore", JobState.FAILED, False),
    ],
)
def test_retry_applies_to_what_jobs_resume_resumes(
    kind: str, state: JobState, allowed: bool
) -> None:
    assert job_action_allowed(Job(id=1, kind=kind, state=state), "retry") is allowed
