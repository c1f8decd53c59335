"""How a job's result reads, for both faces: the JSON scripts parse and the lines people read.

The one place that turns core.jobs results into text: `jobs show` (its JSON and its
`result.*` lines), the reports `verify` and `backup-delete` print when their job ends, and
the backup a job names in the console (`backup` and `restore` print fields as they are).
Imports no Textual: the batch face uses it.
"""

from __future__ import annotations

from core.jobs import Job
from core.jobs.results import DeleteJobResult, ResultRecord, VerifyJobResult


def result_json(job: Job) -> dict[str, object]:
    """The `result` object of `jobs show/list/watch --format json`: as the store records it."""
    return ResultRecord(job.details, job.result).to_json()


def result_fields(job: Job) -> list[tuple[str, str]]:
    """`jobs show`'s `result.KEY  value` lines (values as Python prints the JSON ones)."""
    return [(f"result.{key}", str(value)) for key, value in result_json(job).items()]


def backup_label(job: Job) -> str:
    """The backup a job acts on, once it is known; '-' before."""
    return job.details.backup_id or "-"


def verify_lines(result: VerifyJobResult) -> list[str]:
    """What `verify` prints: what was checked, what was not, the drill, the summary."""
    lines = [f"verified: {line}" for line in result.checked]
    lines += [f"not checked: {line}" for line in result.not_checked]
    lines += [f"drill: {line}" for line in result.drill]
    lines.append(result.summary)
    return lines


def delete_lines(result: DeleteJobResult, verbose: bool = False) -> list[str]:
    """What `backup-delete` prints: the policy's verdicts, each deletion and its WAL."""
    lines = []
    if result.policy:
        lines.append(f"retention policy {result.policy} evaluated at {result.now}")
        if verbose:
            lines += [f"  {backup_id}  {status}" for backup_id, status in result.statuses]
    for item in result.deleted:
        verb = "would delete" if result.dry_run else "deleted"
        lines.append(
            f"{verb} backup {item.backup_id} ({item.status}, {item.why}): "
            f"{len(item.objects)} objects, {item.size} bytes"
        )
        if result.dry_run or verbose:
            lines += [f"  {key}" for key in item.objects]
        runs = ", ".join(
            first if n == 1 else f"{first}..{last} ({n})" for first, last, n in item.wal_runs
        )
        wal_verb = "would remove" if result.dry_run else "removed"
        lines.append(
            f"  WAL: {wal_verb} {item.wal_count} file(s){': ' + runs if runs else ''} "
            f"({item.wal_reason})"
        )
    lines += list(result.skipped)
    if not result.deleted and not result.skipped:
        lines.append("nothing to delete")
    return lines
