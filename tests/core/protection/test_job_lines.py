"""While the agent runs a job, the job's errors stay off stderr at the default verbosity
(they are in its job log, and the agent says the job's end in one line), and so do all its
lines once the agent is stopping; its warnings show (an operator waiting on adhoc-backup
must see that archive_command fails). The agent's own warnings and errors always reach
stderr: its logger's (passes, claims, Object Lock checks), the claim-renewal thread's
whatever logger that one goes through (the store it renews in), and the locks' shared with
other hosts."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from core.protection.claims import CLAIM_THREAD
from core.protection.runs import job_lines_in_job_log
from tui.batch.main import configure_logging


@contextmanager
def cli_logging(verbosity: int) -> Iterator[None]:
    """Logging as the batch command sets it up (to the captured stderr), then as it was."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging(verbosity)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _in_thread(name: str, logger: str, message: str) -> None:
    thread = threading.Thread(
        target=lambda: logging.getLogger(logger).warning(message), name=name, daemon=True
    )
    thread.start()
    thread.join(10)


def test_the_agents_own_lines_reach_stderr_while_a_job_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with cli_logging(0):
        with job_lines_in_job_log():
            logging.getLogger("pgvault.backup").warning("job: archive_command fails")
            logging.getLogger("pgvault.jobs").error("job: failed: the backup")
            _in_thread("upload-1", "pgvault.storage", "job: retrying an upload")
            logging.getLogger("pgvault.protection").error("agent: the claim was taken over")
            logging.getLogger("pgvault.protection").warning("agent: WAL lock not readable")
            _in_thread(CLAIM_THREAD, "pgvault.storage", "agent: retrying the claim's renewal")
            _in_thread(CLAIM_THREAD, "pgvault.protection", "agent: could not renew the claim")
            logging.getLogger("pgvault.lock").warning("lock: taking over the stale server lock")
        logging.getLogger("pgvault.backup").warning("after: shown again")
    assert capsys.readouterr().err.splitlines() == [
        "WARNING: job: archive_command fails",
        "WARNING: job: retrying an upload",
        "ERROR: agent: the claim was taken over",
        "WARNING: agent: WAL lock not readable",
        "WARNING: agent: retrying the claim's renewal",
        "WARNING: agent: could not renew the claim",
        "WARNING: lock: taking over the stale server lock",
        "WARNING: after: shown again",
    ]


def test_at_v_the_jobs_lines_show_as_well(capsys: pytest.CaptureFixture[str]) -> None:
    with cli_logging(1), job_lines_in_job_log():
        logging.getLogger("pgvault.backup").warning("job: archive_command fails")
        logging.getLogger("pgvault.protection").error("agent: the claim was taken over")
    assert capsys.readouterr().err.splitlines() == [
        "WARNING: job: archive_command fails",
        "ERROR: agent: the claim was taken over",
    ]


def test_once_the_agent_is_stopping_the_jobs_lines_stay_in_its_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from core.protection.stopping import STOP

    with cli_logging(0), job_lines_in_job_log():
        STOP.request("the agent was stopped by SIGTERM")
        try:
            logging.getLogger("pgvault.backup").warning("job: cancelled while uploading")
            logging.getLogger("pgvault.protection").warning("agent: releasing the claim")
        finally:
            STOP.reset()
    assert capsys.readouterr().err.splitlines() == ["WARNING: agent: releasing the claim"]
