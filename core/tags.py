"""Object tags as operators type them: KEY,VALUE words, checked with barman-cloud's rules."""

from __future__ import annotations

from core.errors import InputError


def parse_tag(text: str) -> tuple[str, str]:
    """One KEY,VALUE tag as barman-cloud writes it."""
    key, sep, value = text.partition(",")
    if not sep or not key:
        raise InputError(f"tag {text!r} must be KEY,VALUE")
    return key, value


def parse_tags(text: str) -> tuple[tuple[str, str], ...]:
    """Space-separated KEY,VALUE tags (as after `--tags`): at most ten, unique non-empty keys."""
    # core.storage loads lazily: archive_command's argument parsing never needs a store.
    from core.storage import validate_tags

    return validate_tags(parse_tag(word) for word in text.split())
