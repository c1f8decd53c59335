"""Sizes parse exactly as barman-cloud parses them (reference §1.1)."""

import pytest

from core.errors import InputError
from core.sizes import parse_size, size_argument
from core.units import format_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5MB", 5 * 1024**2),
        ("5MiB", 5_000_000),
        ("100GB", 107_374_182_400),
        ("64KB", 65_536),
        ("1234B", 1234),
        ("1234", 1234),
        ("1.5KB", 1536),
        ("2tb", 2 * 1024**4),
    ],
)
def test_barman_sizes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text", ["", "5K", "abc", "0", "-5MB", "MB", "1e400KB", "infKB", "-infKB", "nanKB", "1e400"]
)
def test_bad_sizes_are_input_errors(text: str) -> None:
    with pytest.raises(InputError, match="not a valid size"):
        parse_size(text)


def test_format_size() -> None:
    assert format_size(512) == "512 B"
    assert format_size(1536 * 1024) == "1.5 MiB"


@pytest.mark.parametrize(
    ("n", "text"), [(8388608, "8MB"), (3 * 1024**3, "3GB"), (1536, "1536"), (2048, "2KB")]
)
def test_a_byte_count_prints_as_a_size_argument_that_reads_back_exactly(n: int, text: str) -> None:
    assert size_argument(n) == text
    assert parse_size(size_argument(n)) == n
