"""The Textual console. Imported only when the console opens (never by --batch)."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Static

from core.paths import default_destination


class PgvaultApp(App[int]):
    """The operator console."""

    TITLE = "pgvault"
    BINDINGS = [Binding("q", "quit", "Quit", id="quit"), Binding("f10", "quit", show=False)]

    def __init__(self, destinations: list[str], state: str, read_only: bool) -> None:
        super().__init__()
        self.destinations = destinations
        self.state = state
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(
            "\n".join(f"catalog  {d}" for d in self.destinations) + f"\njobs     {self.state}",
            id="summary",
        )
        yield Footer()


def run_console(state_dir: str | None, read_only: bool, demo: bool, destinations: list[str]) -> int:
    from core import paths

    app = PgvaultApp(
        destinations or [default_destination()], str(paths.state_dir(state_dir)), read_only
    )
    app.run()
    return 0
