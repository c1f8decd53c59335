"""Words an operator types that pgvault writes somewhere: a line of `backup.info`, an object
key, a line of `postgresql.auto.conf`, an object tag.

barman-cloud takes a server or backup name as it comes, so a newline in one would start a
new `key=value` line in `backup.info`. pgvault refuses, with exit 3, the characters that
break a line or a key (control characters, line and paragraph separators, and bytes that
are not UTF-8, which reach Python as lone surrogates), and what no file system or object
store takes as one path segment (over 255 bytes). Everything else barman-cloud accepts.
"""

from __future__ import annotations

import unicodedata

from core.errors import InputError

#: one path segment on every file system pgvault writes to (NAME_MAX)
MAX_NAME_BYTES = 255
# Cc: C0/C1 controls (newline, tab, NUL, DEL...); Cs: undecodable argv bytes; Zl/Zp: what
# str.splitlines() also breaks a line on.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_SHOWN = 40


def shown(text: str) -> str:
    """The text as an error message quotes it: repr, cut short."""
    return repr(text) if len(text) <= _SHOWN else repr(text[:_SHOWN]) + "..."


def unsafe_character(text: str) -> str | None:
    """The first character that would break a line or a key, or None."""
    for char in text:
        if unicodedata.category(char) in _UNSAFE_CATEGORIES:
            return char
    return None


def check_line_safe(text: str, what: str) -> str:
    """`text` unchanged, or InputError naming `what` when it holds a line-breaking character."""
    bad = unsafe_character(text)
    if bad is not None:
        code = f"U+{ord(bad):04X}"
        raise InputError(f"{what} {shown(text)} contains the control character {code}")
    return text


def check_name(text: str, what: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """A name that is line-safe and at most `max_bytes` of UTF-8."""
    check_line_safe(text, what)
    size = len(text.encode())
    if size > max_bytes:
        raise InputError(f"{what} {shown(text)} is {size} bytes long: at most {max_bytes}")
    return text
