"""The bottom line of every view: the keys that work here, `enter Open p Pause C Cancel`.

A click on a key does what pressing it does.

Textual's Footer mounts one widget per key and rebuilds them all whenever the bindings
change (every view switch, focus move, or selection that turns pause into resume): that
was about half of the CPU a key press cost. This renders the same line as one Text.
"""

from __future__ import annotations

import unicodedata
from dataclasses import replace

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.keys import REPLACED_KEYS, key_to_character
from textual.screen import Screen
from textual.widget import Widget


class KeyBar(Widget):
    """The screen's active bindings that are shown, one `key Description` per action."""

    COMPONENT_CLASSES = {"keybar--key", "keybar--description"}

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        .keybar--key { color: $footer-key-foreground; text-style: bold; }
        .keybar--description { color: $footer-description-foreground; }
    }
    """

    def __init__(self) -> None:
        super().__init__()
        #: (key style, description style, the stylesheet version they were read for):
        #: reading them was a third of the bar's drawing, which every view switch redoes
        self._styles: tuple[Style, Style, int] | None = None

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if screen is self.screen:
            self.refresh()

    def render(self) -> Text:
        key_style, description_style = self._key_styles()
        items: list[tuple[str, Text]] = []
        focused = self.screen.focused
        for _node, binding, enabled, _tooltip in self.screen.active_bindings.values():
            if not binding.show or binding.action in (action for action, _ in items):
                continue
            if focused is not None and focused.check_consume_key(
                binding.key, key_character(binding.key)
            ):
                continue  # typing into an input: the key is a character there
            dim = Style() if enabled else Style(dim=True)
            click = Style.from_meta({"key": binding.key, "enabled": enabled})
            item = Text.assemble(
                (self.key_display(binding), key_style + dim + click),
                (f" {binding.description}", description_style + dim + click),
            )
            items.append((binding.action, item))
        fitted = _fit(items, self.size.width)
        return Text(" ", no_wrap=True, overflow="ellipsis", end="").join(fitted)

    def key_display(self, binding: Binding) -> str:
        """The key as shown; a key_display naming a key the focused input types as a
        character (`?` for `question_mark,f1`) gives way to the binding's other key (f1)."""
        shown = binding.key_display or ""
        focused = self.screen.focused
        typed = focused is not None and len(shown) == 1 and focused.check_consume_key(shown, shown)
        if typed:
            return self.app.get_key_display(replace(binding, key_display=None))
        return self.app.get_key_display(binding)

    def _key_styles(self) -> tuple[Style, Style]:
        styled_for = self.app._css_update_count  # bumped by a theme change
        if self._styles is None or self._styles[2] != styled_for:
            self._styles = (
                self.get_component_rich_style("keybar--key"),
                self.get_component_rich_style("keybar--description"),
                styled_for,
            )
        return self._styles[0], self._styles[1]

    def on_click(self, event: events.Click) -> None:
        meta = event.style.meta
        if "key" not in meta:
            return
        if meta.get("enabled"):
            self.app.simulate_key(str(meta["key"]))
        else:
            self.app.bell()


def key_character(key: str) -> str | None:
    """The character a key types: Textual's key_to_character misses a few (`slash`)."""
    character = key_to_character(key)
    if character is None and key in REPLACED_KEYS:
        try:
            character = unicodedata.lookup(REPLACED_KEYS[key].replace("_", " ").upper())
        except KeyError:
            return None
    return character


#: what stays when the bar is too narrow for every key: how to see them all, and to leave
ALWAYS_SHOWN = frozenset({"help", "quit"})


def _fit(items: list[tuple[str, Text]], width: int) -> list[Text]:
    """The items that fit `width`: the view's own keys from the left, then help and quit;
    the keys nearest the end give way first (the help screen lists every key)."""
    kept = list(items)
    while width > 0 and sum(t.cell_len + 1 for _, t in kept) - 1 > width:
        droppable = [i for i, (action, _) in enumerate(kept) if action not in ALWAYS_SHOWN]
        if len(droppable) <= 1:
            break
        del kept[droppable[-1]]
    return [text for _, text in kept]
