"""The helper every long batch command runs its operation through."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest

from core.errors import OperationFailed
from core.jobs import JobState, JobStore
from tests.support.destinations import TestDestination
from tests.support.jobkinds import UPLOAD, UploadRequest
from tests.support.jobs import make_source
from tui.batch.jobrun import add_job_options, run_as_job
from tui.batch.main import Context
from tui.batch.options import BatchParser

MiB = 1024 * 1024


def test_detach_is_one_shared_flag() -> None:
    parser = BatchParser(add_help=False)
    add_job_options(parser)
    assert parser.parse_args(["--detach"]).detach is True
    assert parser.parse_args([]).detach is False


def test_a_foreground_run_is_a_job_in_the_store(
    tmp_path: Path, make_dest: object, capsys: pytest.CaptureFixture[str]
) -> None:
    dest: TestDestination = make_dest("file")  # type: ignore[operator]
    request = UploadRequest(make_source(tmp_path / "src", MiB), dest.url, "o")
    args = argparse.Namespace(detach=False, quiet=0)
    job = run_as_job(args, Context(state_dir=str(tmp_path / "state")), UPLOAD, request)
    assert job is not None and job.state is JobState.SUCCEEDED and job.id > 0
    stored = JobStore(tmp_path / "state" / "jobs.db").get(job.id)
    assert stored.result == {"key": "o", "size": MiB} and not stored.detached
    assert capsys.readouterr().out == ""  # the command prints its own result


def test_without_a_usable_store_the_foreground_run_goes_on_and_detach_refuses(
    tmp_path: Path, make_dest: object, caplog: pytest.LogCaptureFixture
) -> None:
    dest: TestDestination = make_dest("file")  # type: ignore[operator]
    request = UploadRequest(make_source(tmp_path / "src", MiB), dest.url, "o")
    (tmp_path / "blocked").write_text("a file where the state directory should be")
    ctx = Context(state_dir=str(tmp_path / "blocked" / "state"))
    with caplog.at_level(logging.WARNING, logger="pgvault.jobs"):
        job = run_as_job(argparse.Namespace(detach=False, quiet=0), ctx, UPLOAD, request)
    assert job is not None and job.id == 0 and job.result["size"] == MiB
    assert "running without job tracking" in caplog.text
    with dest.store() as store:
        assert store.get_bytes("o") == (tmp_path / "src").read_bytes()
    with pytest.raises(OperationFailed, match="cannot open the job store"):
        run_as_job(argparse.Namespace(detach=True, quiet=0), ctx, UPLOAD, request)
