"""`u` on an encrypted backup: the passphrase (masked) or an identity file that opens its
server's key file, checked before the form closes.

The keys stay in this console's memory (`HeldKeys`): its own reads use them, and the jobs
it starts for that server get them in their process environment. Nothing of them reaches
the job store, a log or the screen.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Button, Input, Label, Static
from textual.worker import Worker, WorkerState

from tui.adapter import BackupRef, HeldKeys, describe_error, unlock_keys
from tui.modals.job_form import FormScreen


class UnlockScreen(FormScreen[HeldKeys | None]):
    """Dismissed with the server's keys once they opened its key file, or None when abandoned."""

    def __init__(self, ref: BackupRef, purpose: str = "to read it") -> None:
        super().__init__()
        self.ref = ref
        self.purpose = purpose  # what the keys are for, as the note says it
        self._worker: Worker[HeldKeys] | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="form"):
            yield Label(f"Unlock server {self.ref.server}", id="dialog-title")
            with Grid(id="form-grid"):
                yield Label("Passphrase", classes="form-label")
                yield Input(
                    placeholder="the encryption passphrase (not shown)",
                    password=True,
                    id="passphrase",
                    compact=True,
                )
                yield Label("Identity file", classes="form-label")
                yield Input(
                    placeholder="or the path of an age identity file (mode 0600)",
                    id="identity",
                    compact=True,
                )
            note = (
                f"backup {self.ref.info.backup_id} is encrypted; {self.purpose}, give the "
                f"passphrase or an identity file that opens its server's key file in "
                f"{self.ref.label}. The keys stay in this console's memory and go only to "
                "the jobs it starts."
            )
            yield from self.form_footer("Unlock", note)

    def on_mount(self) -> None:
        self.focus_first(self.query_one("#passphrase", Input))

    def on_input_changed(self, event: Input.Changed) -> None:
        if not self.starting:
            self.query_one("#form-status", Static).update("")

    def action_submit(self) -> None:
        if self.starting:
            return
        passphrase = self.query_one("#passphrase", Input).value
        identity = self.query_one("#identity", Input).value.strip()
        status = self.query_one("#form-status", Static)
        if not passphrase and not identity:
            status.update(Text("give the passphrase or an identity file", style="bold red"))
            return
        status.update(Text("unlocking the key file ...", style="bold"))
        self.starting = True
        self.query_one("#start", Button).disabled = True
        url, server = self.ref.url, self.ref.server
        self._worker = self.run_worker(
            lambda: unlock_keys(url, server, passphrase, identity),
            thread=True,
            exit_on_error=False,
            group="unlock",
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = self._worker
        if worker is None or event.worker is not worker:
            return
        if event.state is WorkerState.SUCCESS:
            self.dismiss(worker.result)
        elif event.state is WorkerState.ERROR:
            self._worker = None
            self.starting = False
            self.query_one("#start", Button).disabled = False
            message = describe_error(worker.error or RuntimeError("failed"))
            self.query_one("#form-status", Static).update(Text(message, style="bold red"))
            # The field the error is about: an identity file given is the one tried.
            identity = self.query_one("#identity", Input)
            (identity if identity.value.strip() else self.query_one("#passphrase", Input)).focus()
