"""Size arguments parsed exactly as barman-cloud parses them (core.units prints sizes)."""

from __future__ import annotations

from core.errors import InputError

_PREFIXES = "KMGTPEZY"


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


def size_argument(n: int) -> str:
    """A byte count as a size argument parse_size reads back exactly: 8388608 -> '8MB'."""
    for prefix in reversed(_PREFIXES[:4]):
        unit = 1024 ** (_PREFIXES.index(prefix) + 1)
        if n >= unit and n % unit == 0:
            return f"{n // unit}{prefix}B"
    return str(n)
