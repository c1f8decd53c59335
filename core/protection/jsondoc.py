"""Reading JSON documents a person wrote: every error names the JSON path and the problem.

Documents are written back as sorted, two-space indented JSON with a final newline, so the
same document always gives the same bytes (the shape `az` prints).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import InputError
from core.named_files import read_named_file


def dumps(document: Mapping[str, Any] | list[Any]) -> str:
    """Sorted, indented JSON with a trailing newline: stable bytes for a given document."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


#: far above any policy or instance a person writes; a larger file is not one
MAX_DOCUMENT = 16 * 1024 * 1024


def read_document(path: str, what: str) -> bytes:
    """The bytes of a file an operator named (`--policy FILE`), or InputError (a FIFO
    nobody writes to reads as empty: core.named_files)."""
    try:
        data = read_named_file(path, MAX_DOCUMENT)
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot read it ({exc.strerror})") from None
    if len(data) > MAX_DOCUMENT:
        raise InputError(f"{what} {path}: larger than 16 MiB, not a document to read")
    return data


def loads(text: str | bytes, what: str) -> Any:
    """Parse JSON text, or InputError naming the document, line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{what}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except UnicodeDecodeError:
        raise InputError(f"{what}: not UTF-8 text") from None
    except RecursionError:
        raise InputError(f"{what}: nested too deeply to read") from None
    except ValueError:  # an integer of more digits than Python converts (4300)
        raise InputError(f"{what}: a number has too many digits to read") from None


@dataclass(frozen=True)
class Node:
    """A value inside a document together with its JSON path ($.a.b[0])."""

    value: Any
    path: str = "$"
    what: str = "document"

    def fail(self, problem: str) -> InputError:
        return InputError(f"{self.what} {self.path}: {problem}")

    def child(self, key: str) -> Node:
        return Node(self.obj().get(key), f"{self.path}.{key}", self.what)

    def has(self, key: str) -> bool:
        return key in self.obj()

    def obj(self) -> dict[str, Any]:
        if not isinstance(self.value, dict):
            raise self.fail(f"expected an object, got {_kind(self.value)}")
        return self.value

    def items(self) -> Iterator[Node]:
        """The elements of a list (null reads as an empty list)."""
        if self.value is None:
            return
        if not isinstance(self.value, list):
            raise self.fail(f"expected a list, got {_kind(self.value)}")
        for index, item in enumerate(self.value):
            yield Node(item, f"{self.path}[{index}]", self.what)

    def text(self) -> str:
        if not isinstance(self.value, str) or not self.value:
            raise self.fail(f"expected a non-empty string, got {_kind(self.value)}")
        return self.value

    def optional_text(self) -> str | None:
        return None if self.value is None else self.text()

    def integer(self) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self.fail(f"expected an integer, got {_kind(self.value)}")
        return self.value

    def boolean(self, default: bool | None = None) -> bool:
        if self.value is None and default is not None:
            return default
        if not isinstance(self.value, bool):
            raise self.fail(f"expected true or false, got {_kind(self.value)}")
        return self.value

    def choice(self, allowed: tuple[str, ...]) -> str:
        value = self.text()
        if value not in allowed:
            raise self.fail(f"unknown value {value!r} (expected one of {', '.join(allowed)})")
        return value

    def object_type(self, *allowed: str) -> str:
        """The objectType discriminator, which must be one of `allowed`."""
        node = self.child("objectType")
        if node.value is None:
            raise node.fail(f"missing (expected {' or '.join(allowed)})")
        if node.value not in allowed:
            raise node.fail(f"unknown objectType {node.value!r} (expected {' or '.join(allowed)})")
        return str(node.value)

    def only_keys(self, allowed: set[str]) -> None:
        """Refuse keys this reader does not know: a misspelt key must not be ignored."""
        for key in sorted(self.obj()):
            if key not in allowed:
                raise self.child(key).fail(f"unknown key (expected {', '.join(sorted(allowed))})")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string" if value else "an empty string"
    if isinstance(value, list):
        return "a list"
    return "an object"
