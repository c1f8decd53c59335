"""A real operation to drive the job engine with: upload a local file through core.storage.

It is what the engine's tests and benchmark run as a job before backups exist: the bytes go
through the product's own multipart writer, bandwidth limiter and gate, so pause, cancel
and the rate are the real ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from core.jobs import JobInfo, JobKind
from core.jobs.model import Job
from core.jobs.results import JsonResult
from core.progress import Reporter
from core.storage import StoreConfig, open_store
from core.urls import parse_location

BLOCK = 256 * 1024


@dataclass(frozen=True)
class UploadRequest:
    source: str
    url: str
    key: str
    server: str = "test"
    endpoint_url: str | None = None
    jobs: int = 2
    max_bandwidth: int | None = None
    chunk_size: int | None = None


def upload(request: UploadRequest, reporter: Reporter) -> JsonResult:
    """Stream the file into one object; pause and cancel act through the store's gate."""
    config = StoreConfig(
        endpoint_url=request.endpoint_url,
        jobs=request.jobs,
        max_bandwidth=request.max_bandwidth,
        min_chunk_size=request.chunk_size,
    )
    size = os.path.getsize(request.source)
    reporter.phase("upload")
    reporter.set_totals(bytes_total=size, files_total=1)
    reporter.log(f"uploading {size} bytes to {request.key}")
    reporter.detail("key", request.key)
    with open_store(parse_location(request.url), config) as store:
        store.gate = reporter.checkpoint
        store.meter = reporter.transferred
        with open(request.source, "rb") as source, store.open_writer(request.key) as writer:
            while block := source.read(BLOCK):
                reporter.checkpoint()
                writer.write(block)
                reporter.advance(len(block))
        reporter.advance(files=1)
    return JsonResult({"key": request.key, "size": size})


def describe(request: UploadRequest) -> JobInfo:
    location = parse_location(request.url)
    return JobInfo(
        description=f"upload {request.source} to {location.display()}/{request.key}",
        server=request.server,
        destination=location.display(),
    )


def public(request: UploadRequest) -> UploadRequest:
    return replace(request, url=parse_location(request.url).display())


def resume(request: UploadRequest, failed: Job) -> UploadRequest:
    return request


UPLOAD: JobKind[UploadRequest] = JobKind(
    name="test-upload",
    request_type=UploadRequest,
    run=upload,
    describe=describe,
    entry="tests.support.jobkinds:UPLOAD",
    public=public,
    resume=resume,
)
