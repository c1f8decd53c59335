"""The theme follows the terminal's colours: 16-colour terminals get the terminal's palette."""

from __future__ import annotations

import pytest

from tui.app import choose_theme


@pytest.mark.parametrize(
    ("term", "colorterm", "theme"),
    [
        ("xterm", None, "ansi-dark"),  # 16 colours: the terminal's own palette reads best
        ("vt100", None, "ansi-dark"),
        ("xterm-256color", None, None),  # Textual's default theme
        ("xterm", "truecolor", None),
    ],
)
def test_the_theme_follows_the_colour_system(
    monkeypatch: pytest.MonkeyPatch, term: str, colorterm: str | None, theme: str | None
) -> None:
    for name in ("PGVAULT_THEME", "TEXTUAL_THEME", "COLORTERM", "NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", term)
    if colorterm:
        monkeypatch.setenv("COLORTERM", colorterm)
    assert choose_theme() == theme


def test_an_explicit_theme_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("PGVAULT_THEME", "nord")
    assert choose_theme() == "nord"
