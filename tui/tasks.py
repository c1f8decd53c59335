"""Blocking calls off the UI thread: a thread worker each, the result handed back to the UI.

Nothing slow runs on the UI thread: `Tasks.run` starts the call in a thread worker of the
app and, when it ends, calls `done(result)` on the UI thread, or shows a one-line error. A
worker an exclusive group cancelled (a newer listing of the same destination) is forgotten.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from textual.app import App
from textual.worker import Worker, WorkerState

from core import paths
from core.secrets import redact
from tui.adapter import describe_error

T = TypeVar("T")


def write_error_log(state_dir: str | None, exc: BaseException) -> str | None:
    """Append the traceback (redacted) to the console's log file; its path, None if unwritable."""
    try:
        directory = paths.state_dir(state_dir)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = Path(directory) / "console.log"
        text = "".join(traceback.format_exception(exc))
        with open(path, "a") as fh:
            fh.write(redact(text) + "\n")
        return str(path)
    except OSError:
        return None


class Tasks:
    """The app's blocking calls in flight, each with what to do with its result."""

    def __init__(self, app: App[Any], state_dir: str | None) -> None:
        self._app = app
        self._state_dir = state_dir
        self._pending: dict[Worker[Any], tuple[Callable[[Any], None] | None, str]] = {}

    def run(
        self,
        work: Callable[[], T],
        done: Callable[[T], None] | None,
        what: str,
        group: str = "task",
        exclusive: bool = False,
    ) -> Worker[T]:
        """Run a blocking call in a thread; `done(result)` on the UI thread, or a notification."""
        worker: Worker[T] = self._app.run_worker(
            work,
            thread=True,
            group=group,
            exclusive=exclusive,
            exit_on_error=False,
            description=what,
        )
        self._pending[worker] = (done, what)
        return worker

    def finished(self, event: Worker.StateChanged) -> bool:
        """Handle a worker's state change; False when the worker is not one of these tasks."""
        entry = self._pending.get(event.worker)
        if entry is None:
            return False
        done, what = entry
        if event.state is WorkerState.SUCCESS:
            del self._pending[event.worker]
            if done is not None:
                try:
                    done(event.worker.result)
                except Exception as exc:  # a view's bug must not take the console down
                    self.report_error(what, exc)
        elif event.state is WorkerState.ERROR:
            del self._pending[event.worker]
            error = event.worker.error or RuntimeError("unknown error")
            self._app.notify(f"{what}: {describe_error(error)}", severity="error", timeout=8)
        elif event.state is WorkerState.CANCELLED:
            del self._pending[event.worker]
        return True

    def report_error(self, what: str, exc: BaseException) -> None:
        """One line on screen, the details in the console's log file."""
        path = write_error_log(self._state_dir, exc)
        where = f" (details in {path})" if path else ""
        self._app.notify(f"{what}: {describe_error(exc)}{where}", severity="error", timeout=10)
