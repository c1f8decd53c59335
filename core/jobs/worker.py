"""The detached job process: `python -m core.jobs.worker --store DB JOB_ID` (request on stdin).

Started by core.jobs.runner.spawn_detached in its own session with stdout discarded and
stderr appended to the job's worker log under the state directory; not a user command.

The process lowers its CPU priority by JOB_NICENESS: on a database host the detached backup,
restore or verify must not take CPU from PostgreSQL or from the operator's console. When
the CPU is idle the job runs as fast as before; a job that must win runs in the foreground
(`pgvault --batch backup` without `--detach`), at the caller's priority.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from core.errors import ExitCode, PgvaultError
from core.jobs.runner import run_worker
from core.secrets import RedactingFormatter, redact, register_environment_secrets

log = logging.getLogger("pgvault.jobs")

#: added to the niceness of the process that started the job (capped at 19 by the kernel)
JOB_NICENESS = 10


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for noisy in ("botocore", "boto3", "urllib3", "azure", "google", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.jobs.worker")
    parser.add_argument("--store", required=True, help="the job store database")
    parser.add_argument("job_id", type=int)
    args = parser.parse_args(argv)
    request = sys.stdin.read()
    # Nothing may wait on a terminal that is gone: stdin becomes /dev/null.
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    register_environment_secrets()
    _configure_logging()
    niceness = os.nice(JOB_NICENESS)
    log.info("job %s: process %s started (nice %s)", args.job_id, os.getpid(), niceness)
    try:
        code = run_worker(args.store, args.job_id, request)
    except PgvaultError as exc:
        log.error("job %s: %s", args.job_id, exc)
        return int(exc.exit_code)
    except Exception as exc:
        log.error("job %s: unexpected error", args.job_id, exc_info=True)
        print(redact(f"{type(exc).__name__}: {exc}"), file=sys.stderr)
        return int(ExitCode.OTHER)
    log.info("job %s: process %s exits with %s", args.job_id, os.getpid(), code)
    return code


if __name__ == "__main__":
    sys.exit(main())
