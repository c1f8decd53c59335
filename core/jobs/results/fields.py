"""Typed reads of a stored result's JSON object: a missing or mistyped field is MalformedResult."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class MalformedResult(ValueError):
    """A stored result lacks the shape its kind's type needs (another version wrote it)."""


@dataclass(frozen=True)
class Fields:
    """One JSON object read field by field, each as the type the result needs."""

    data: Mapping[str, object]

    def _get(self, key: str) -> object:
        try:
            return self.data[key]
        except KeyError:
            raise MalformedResult(f"no {key!r} in the result") from None

    def text(self, key: str) -> str:
        return as_text(key, self._get(key))

    def optional_text(self, key: str) -> str | None:
        value = self._get(key)
        return None if value is None else as_text(key, value)

    def number(self, key: str) -> int:
        return as_number(key, self._get(key))

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise MalformedResult(f"{key!r} is not true or false")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        return tuple(as_text(key, item) for item in self.items(key))

    def pairs(self, key: str) -> tuple[tuple[str, str], ...]:
        """A list of two-string lists (JSON has no tuples)."""
        pairs = []
        for item in self.items(key):
            first, second = as_row(key, item, 2)
            pairs.append((as_text(key, first), as_text(key, second)))
        return tuple(pairs)

    def items(self, key: str) -> tuple[object, ...]:
        value = self._get(key)
        if not isinstance(value, list):
            raise MalformedResult(f"{key!r} is not a list")
        return tuple(value)

    def objects(self, key: str) -> tuple[Fields, ...]:
        """A list of JSON objects, each to be read field by field."""
        return tuple(fields_of(key, item) for item in self.items(key))


def fields_of(key: str, value: object) -> Fields:
    if not isinstance(value, dict):
        raise MalformedResult(f"{key!r} holds something other than an object")
    return Fields(value)


def as_row(key: str, value: object, size: int) -> list[object]:
    """A JSON list of exactly `size` items (a tuple once read)."""
    if not isinstance(value, list) or len(value) != size:
        raise MalformedResult(f"{key!r} holds something other than lists of {size}")
    return value


def as_text(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise MalformedResult(f"{key!r} is not a string")
    return value


def as_number(key: str, value: object) -> int:
    # bool is an int to Python, not to JSON.
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedResult(f"{key!r} is not an integer")
    return value
