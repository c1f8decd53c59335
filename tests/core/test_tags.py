"""Tags as barman-cloud 3.19.1's check_tag reads them, without the newline its \\s lets in."""

import pytest

from core.errors import InputError
from core.tags import parse_tag, parse_tags


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("team,db", ("team", "db")),
        (" team , db ", ("team", "db")),
        ("k,", ("k", "")),
        ("path/to:x,v=1+2@3 -_.", ("path/to:x", "v=1+2@3 -_.")),
        ("k" * 128 + "," + "v" * 256, ("k" * 128, "v" * 256)),
    ],
)
def test_tags_barman_cloud_takes(text: str, tag: tuple[str, str]) -> None:
    assert parse_tag(text) == tag


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("novalue", "KEY,VALUE"),
        (",v", "KEY,VALUE"),
        ("k" * 129 + ",v", "longer than 128"),
        ("k," + "v" * 257, "longer than 256"),
        ("aws:x,y", "reserved prefix"),
        ("AWS:x,y", "reserved prefix"),
        ("a\nb,c", "character barman-cloud refuses"),
        ("k,v\nw", "character barman-cloud refuses"),
        ("k,v\tw", "character barman-cloud refuses"),
        ("ké,v", "character barman-cloud refuses"),
        ("k,v#", "character barman-cloud refuses"),
        ("k,a,b", "character barman-cloud refuses"),
    ],
)
def test_tags_barman_cloud_refuses(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_tag(text)


def test_at_most_ten_tags_with_unique_keys() -> None:
    assert len(parse_tags(" ".join(f"k{i},v" for i in range(10)))) == 10
    with pytest.raises(InputError, match="at most 10"):
        parse_tags(" ".join(f"k{i},v" for i in range(11)))
    with pytest.raises(InputError, match="unique"):
        parse_tags("k,v k,w")
