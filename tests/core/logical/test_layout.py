"""Database names as key segments: `.` and `..` encoded, every other name as before."""

from __future__ import annotations

import pytest

from core.logical.layout import db_dirname, db_name


@pytest.mark.parametrize(
    "name, segment",
    [
        (".", "%2E"),
        ("..", "%2E%2E"),
        ("...", "..."),  # a key segment as it is: its key stays what it was
        ("a.b", "a.b"),
        ("shöp", "sh%C3%B6p"),
        ("a/b", "a%2Fb"),
        ("%2E", "%252E"),
    ],
)
def test_a_database_name_is_one_key_segment_and_comes_back(name: str, segment: str) -> None:
    assert db_dirname(name) == segment
    assert db_name(db_dirname(name)) == name
