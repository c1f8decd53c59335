"""Sizes printed for people: one format for every table, log and error message."""

from __future__ import annotations

KIB = 1024


def format_size(n: float) -> str:
    """Binary units with one decimal, e.g. 1.5 GiB; compact for tables and logs."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    value = float(n)
    for unit in units:
        if abs(value) < KIB or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= KIB
    return f"{value:.1f} PiB"  # pragma: no cover - loop always returns
