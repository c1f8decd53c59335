"""Object tags as operators type them: KEY,VALUE words, checked with barman-cloud's rules."""

from __future__ import annotations

import re

from core.errors import InputError
from core.names import shown

MAX_KEY = 128
MAX_VALUE = 256
# barman-cloud 3.19.1's check_tag allows [a-zA-Z0-9\s_.:/=+\-@]; its \s would also let a
# newline or a tab through, which no object store takes in a tag: only the space here.
_ALLOWED = re.compile(r"[a-zA-Z0-9 _.:/=+\-@]*")


def parse_tag(text: str) -> tuple[str, str]:
    """One KEY,VALUE tag as barman-cloud reads it (stripped, AWS's length and charset)."""
    key, sep, value = text.partition(",")
    key, value = key.strip(), value.strip()
    if not sep or not key:
        raise InputError(f"tag {shown(text)} must be KEY,VALUE")
    if len(key) > MAX_KEY:
        raise InputError(f"tag key {shown(key)} is longer than {MAX_KEY} characters")
    if key.lower().startswith("aws:"):
        raise InputError(f"tag key {shown(key)} starts with the reserved prefix 'aws:'")
    if len(value) > MAX_VALUE:
        raise InputError(f"tag value of {shown(key)} is longer than {MAX_VALUE} characters")
    for what, word in (("key", key), ("value", value)):
        if not _ALLOWED.fullmatch(word):
            raise InputError(
                f"tag {what} {shown(word)} has a character barman-cloud refuses: allowed are "
                "letters, digits, spaces and _ . : / = + - @"
            )
    return key, value


def parse_tags(text: str) -> tuple[tuple[str, str], ...]:
    """Space-separated KEY,VALUE tags (as after `--tags`): at most ten, unique non-empty keys."""
    # core.storage loads lazily: archive_command's argument parsing never needs a store.
    from core.storage import validate_tags

    return validate_tags(parse_tag(word) for word in text.split())
