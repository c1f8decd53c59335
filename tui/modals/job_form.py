"""What every form that starts a detached job shares: submit, abandon, start off the UI thread."""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.scalar import Scalar
from textual.screen import ModalScreen
from textual.validation import ValidationResult, Validator
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Static
from textual.worker import Worker, WorkerState

from core.errors import PgvaultError
from core.jobs import Job, JobKind
from tui.adapter import describe_error

T = TypeVar("T")

#: the environment a job for (destination label, server) gets: the keys the console holds
JobKeys = Callable[[str, str], dict[str, str]]

#: a command-line option, as core's messages name it (`--wal-restore-dir`, `-J/--jobs`),
#: with the `pass ` of "pass --clean to replace it"
_OPTION = re.compile(r"(?<![\w-])(pass )?((?:-[A-Za-z]/)?--[a-z][a-z-]*[a-z])")


def in_form_words(message: str, fields: Mapping[str, str]) -> str:
    """A message of core's, which names command-line options, with the options this form
    has as fields named by their labels (`--wal-restore-dir` -> `the WAL dir field`; "pass
    --clean" -> "set the Clean field")."""

    def field(match: re.Match[str]) -> str:
        option = match.group(2).split("/")[-1]
        label = fields.get(option)
        if not label:
            return match.group(0)
        return f"{'set ' if match.group(1) else ''}the {label} field"

    return _OPTION.sub(field, message)


class Parsed(Validator):
    """A core parser as a Textual validator: its one-line InputError is the message."""

    def __init__(self, parse: Callable[[str], object], optional: bool = False) -> None:
        super().__init__()
        self.parse = parse
        self.optional = optional

    def validate(self, value: str) -> ValidationResult:
        if self.optional and not value.strip():
            return self.success()
        try:
            self.parse(value)
        except PgvaultError as exc:
            return self.failure(str(exc))
        except ValueError as exc:
            return self.failure(str(exc))
        return self.success()


#: the most rows a form's scrolling field area (#form-body) takes (as pgvault.tcss says)
BODY_ROWS = 16
#: the fewest it keeps when a long error and a short terminal leave little room
MIN_BODY_ROWS = 3


class FormStatus(Static):
    """A form's status line: as it grows (a long error), the field area gives up rows."""

    def on_resize(self, event: events.Resize) -> None:
        screen = self.screen
        if isinstance(screen, FormScreen):
            screen.call_after_refresh(screen.fit_body)


class FormScreen(ModalScreen[T]):
    """A modal form: `ctrl+s` (or its Start button) submits, `esc` (or Cancel) abandons
    unless `starting`. Subclasses end their form with `form_footer`."""

    BINDINGS = [
        Binding("ctrl+s,f2", "submit", "Start", key_display="^s/F2", id="form.submit"),
        Binding("escape", "abandon", "Cancel", key_display="esc", id="form.cancel"),
        # Priority: the focus moves as the App reads `tab`, so that what is typed after it
        # in the same read (`localhost<tab>5432`) goes to the next field, not this one.
        Binding("tab", "app.focus_next", show=False, priority=True),
        Binding("shift+tab", "app.focus_previous", show=False, priority=True),
    ]

    #: no focus until `focus_first` gives it (Textual's auto focus would give the first
    #: focusable widget the keys typed before the form's own first field has it)
    AUTO_FOCUS = ""

    def __init__(self) -> None:
        super().__init__()
        self.starting = False  # submitted, its work running: nothing more is taken
        self._typeahead: list[events.Key] = []  # typed before a field had the focus

    def focus_first(self, field: Widget) -> None:
        """Give `field` the focus now, with the keys typed before any field could take them.

        The App hands each key of a read to the focused widget, or to the screen while none
        is: `nabc` typed in one burst (tmux, SSH, a fast typist) reached this screen before
        it had mounted its fields, and `abc` was lost."""
        self.set_focus(field)
        for key in self._typeahead:
            field.post_message(events.Key(key.key, key.character))
        self._typeahead.clear()

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self.fit_body)

    def fit_body(self) -> None:
        """Keep the status line and the buttons in view: the scrolling field area takes the
        rows the rest of the dialog leaves (at 80x24 a four-line error cut the buttons off
        under a field area of a fixed 16 rows)."""
        bodies = self.query("#form-body")
        dialogs = self.query("#dialog")
        if not bodies or not dialogs:
            return
        body, dialog = bodies.first(Widget), dialogs.first(Widget)
        rest = sum(
            w.outer_size.height + w.styles.margin.height
            for w in dialog.children
            if w is not body and w.display
        )
        room = self.size.height - dialog.styles.gutter.height - rest
        rows = max(MIN_BODY_ROWS, min(BODY_ROWS, room))
        if body.styles.max_height != Scalar.from_number(rows):
            body.styles.max_height = rows

    def on_key(self, event: events.Key) -> None:
        focused = self.focused
        if focused is None:
            self._typeahead.append(event)  # tab and backspace too: replayed in order
        elif event.is_printable and isinstance(focused, Input):
            # A field takes every printable key it is given: this one was handed to the
            # screen before the field had the focus (the same burst); it belongs there.
            focused.post_message(events.Key(event.key, event.character))
        else:
            return
        event.stop()
        event.prevent_default()

    @abstractmethod
    def action_submit(self) -> None:
        """Check the fields and start the form's work."""

    def form_footer(self, start_label: str, note: str | None = None) -> ComposeResult:
        """The form's last lines: an optional dim note, the status line, Start and Cancel."""
        if note is not None:
            yield Static(Text(note, style="dim"), id="form-note")
        yield FormStatus("", id="form-status")
        with Horizontal(id="buttons"):
            yield Button(f"{start_label} (^s)", id="start", variant="primary")
            yield Button("Cancel (esc)", id="cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()  # enter in any field submits the form
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "start":
            self.action_submit()
        else:
            self.action_abandon()

    def action_abandon(self) -> None:
        if not self.starting:
            self.dismiss(None)


class JobFormScreen(FormScreen[int | None]):
    """A form dismissed with the id of the job it started, or None when abandoned.

    Subclasses end their form with `form_footer` (the `#form-status` line and the
    `#start` button), and implement `build_request` (raising PgvaultError for bad input)
    and `check_fields`.
    """

    #: the job kind the form starts, and what the status line calls it
    kind: JobKind[Any]
    what = "job"
    #: the command-line options the form has as fields: option -> the field's label
    OPTION_FIELDS: Mapping[str, str] = {}

    def __init__(self, state_dir: str | None, keys: JobKeys | None = None) -> None:
        super().__init__()
        self.state_dir = state_dir
        self.keys = keys
        self._start_worker: Worker[Job] | None = None

    #: fields whose error shows even while they are empty (empty is fine in the others)
    REQUIRED: frozenset[str] = frozenset()
    #: words of an error (an option core names, a phrase) -> the field it is about: an error
    #: of build_request's, or of the job's start, naming one shows under that field
    ERROR_FIELDS: Mapping[str, str] = {}

    @abstractmethod
    def build_request(self) -> Any:
        """The kind's request from the fields; raises PgvaultError on bad input."""

    # ---- per-field errors: a field's parser says what is wrong, under the field --------------

    def checked_field(
        self, field_id: str, validators: list[Validator], **options: Any
    ) -> ComposeResult:
        """An Input checked as it is typed (`validators`, core's parsers: Parsed), with its
        error under it (`#<id>-error`, shown by `show_field_error`); `options` go to Input."""
        with Vertical(classes="form-field"):
            yield Input(
                id=field_id,
                compact=True,
                validators=validators,
                validate_on=["changed", "submitted"],
                **options,
            )
            yield Label("", id=f"{field_id}-error", classes="form-error")

    def show_field_error(self, widget: Input, result: ValidationResult | None) -> None:
        """The field's error under it, or none (an empty field that is not REQUIRED)."""
        labels = self.query(f"#{widget.id}-error")
        if not labels:
            return  # a field without an error line
        label = labels.first(Label)
        if (
            result is None
            or result.is_valid
            or (not widget.value.strip() and widget.id not in self.REQUIRED)
        ):
            label.update("")
            label.display = False
            return
        label.update(Text("; ".join(result.failure_descriptions)))
        label.display = True

    def error_field(self, message: str) -> Input | None:
        """The field an error is about: the one whose words it names first (None: none)."""
        named = [(message.find(words), field) for words, field in self.ERROR_FIELDS.items()]
        for _, field_id in sorted((at, field) for at, field in named if at >= 0):
            fields = self.query(f"#{field_id}")
            if fields and self.query(f"#{field_id}-error"):
                return fields.first(Input)
        return None

    def refuse(self, message: str, prefix: str = "") -> None:
        """An error of the form's, in its words: under the field it is about (focused, in
        view), else in the status line after `prefix`."""
        said = in_form_words(message, self.OPTION_FIELDS)
        status = self.query_one("#form-status", Static)
        widget = self.error_field(message)
        if widget is None:
            status.update(Text(f"{prefix}{said}", style="bold red"))
            return
        label = self.query_one(f"#{widget.id}-error", Label)
        label.update(Text(said))
        label.display = True
        widget.focus()
        status.update(Text("Fix the fields marked above.", style="bold red"))

    def on_input_changed(self, event: Input.Changed) -> None:
        self.show_field_error(event.input, event.validation_result)
        self.query_one("#form-status", Static).update("")
        field = event.input.parent
        if event.input.has_focus and isinstance(field, Widget):
            # The field being typed in, with its error under it: errors shown above it
            # push it down, below the form's fold (keys typed in one burst reach it first).
            self.call_after_refresh(field.scroll_visible, animate=False)

    def check_fields(self) -> bool:
        """Show every field's problem, focus the first (in view); True when all are valid."""
        invalid = []
        for widget in self.query(Input):
            result = widget.validate(widget.value)
            self.show_field_error(widget, result)
            if result is not None and not result.is_valid:
                invalid.append(widget)
        if invalid:
            invalid[0].focus()
            status = self.query_one("#form-status", Static)
            status.update(Text("Fix the fields marked above.", style="bold red"))
        return not invalid

    def action_submit(self) -> None:
        if self.starting or not self.check_fields():
            return
        status = self.query_one("#form-status", Static)
        try:
            request = self.build_request()
        except PgvaultError as exc:
            self.refuse(str(exc))
            return
        self.starting = True
        self.query_one("#start", Button).disabled = True
        status.update(Text(f"starting the {self.what} job ...", style="bold"))
        state_dir, kind = self.state_dir, self.kind
        # Every job request names its destination and server.
        where = (request.location.display(), request.server)
        environment = self.keys(*where) if self.keys is not None else None

        def work() -> Job:
            from core.jobs import JobStore
            from core.jobs.runner import spawn_detached

            # The kind validates the request before any job is recorded.
            with JobStore.open(state_dir) as store:
                return spawn_detached(store, kind, request, environment=environment)

        self._start_worker = self.run_worker(work, thread=True, exit_on_error=False, group="start")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = self._start_worker
        if worker is None or worker is not event.worker:
            return
        if event.state is WorkerState.SUCCESS:
            job = worker.result
            if job is not None:  # a successful start always has its job
                self.dismiss(job.id)
        elif event.state is WorkerState.ERROR:
            self.starting = False
            self.query_one("#start", Button).disabled = False
            error = describe_error(event.worker.error or RuntimeError("failed"))
            self.refuse(error, "cannot start: ")
