"""Size arguments parsed exactly as barman-cloud parses them, and printed for people."""

from __future__ import annotations

from core.errors import InputError

_PREFIXES = "KMGTPEZY"
KIB = 1024


def parse_size(text: str) -> int:
    """Parse '5MB' (base 1024), '5MiB' (base 1000, barman's inversion) or plain bytes."""
    value = text.strip().upper()
    try:
        if value.endswith("B"):
            binary = value.endswith("IB")  # barman's inversion: 'MiB' counts in 1000s
            base, idx = (1000, 3) if binary else (1024, 2)
            multiplier = base
            for prefix in _PREFIXES:
                if len(value) >= idx and value[-idx] == prefix:
                    result = int(float(value[:-idx]) * multiplier)
                    break
                multiplier *= base
            else:
                result = int(value[: -idx + 1])
        else:
            result = int(value)
    except (ValueError, IndexError, OverflowError):  # OverflowError: '1e400KB', 'infKB'
        raise InputError(f"'{text}' is not a valid size string") from None
    if result < 1:
        raise InputError(f"'{text}' is not a valid size string")
    return result


def format_size(n: float) -> str:
    """Binary units with one decimal, e.g. 1.5 GiB; compact for tables and logs."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    value = float(n)
    for unit in units:
        if abs(value) < KIB or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= KIB
    return f"{value:.1f} PiB"  # pragma: no cover - loop always returns


def size_argument(n: int) -> str:
    """A byte count as a size argument parse_size reads back exactly: 8388608 -> '8MB'."""
    for prefix in reversed(_PREFIXES[:4]):
        unit = 1024 ** (_PREFIXES.index(prefix) + 1)
        if n >= unit and n % unit == 0:
            return f"{n // unit}{prefix}B"
    return str(n)
