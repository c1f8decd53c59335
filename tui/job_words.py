"""A job's error in the console's words: for the kinds a console form starts (restore,
logical restore), the command-line options core's messages name read as the form's fields,
as the form itself says them before the job starts (`--clean` -> `the Clean field`)."""

from __future__ import annotations

from collections.abc import Mapping

from core.jobs import Job
from tui.modals.job_form import in_form_words
from tui.modals.logical_restore import LogicalRestoreScreen
from tui.modals.restore import RestoreScreen

#: job kind -> the options its form has as fields (option -> the field's label)
FORM_FIELDS: Mapping[str, Mapping[str, str]] = {
    "logical-restore": LogicalRestoreScreen.OPTION_FIELDS,
    "restore": RestoreScreen.OPTION_FIELDS,
}


def job_error(job: Job) -> str:
    """The job's error (empty when it has none), its options named as its form's fields."""
    return in_form_words(job.error or "", FORM_FIELDS.get(job.kind, {}))
