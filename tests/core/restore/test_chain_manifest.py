"""Which checksum a restored chain's backup_manifest gives a file it did not restore whole."""

from __future__ import annotations

from core.catalog.manifest import FileRecord
from core.restore.chain_manifest import LinkFiles, unchanged_checksum

PATH = "base/5/16384"


def whole(size: int = 16384, checksum: str = "c0ffee") -> dict[str, FileRecord]:
    return {PATH: FileRecord(PATH, size, 0.0, checksum, "data.tar", 0)}


def test_a_file_no_newer_link_changed_keeps_the_whole_copy_checksum() -> None:
    links = [
        LinkFiles({}, set(), "CRC32C"),  # newest: unchanged (no blocks)
        LinkFiles({}, set(), "CRC32C"),
        LinkFiles(whole(), set(), "CRC32C"),  # the full backup
    ]
    assert unchanged_checksum(links, PATH, 16384, "CRC32C") == "c0ffee"


def test_a_file_with_blocks_in_a_newer_link_is_read_back() -> None:
    links = [
        LinkFiles({}, set(), "CRC32C"),
        LinkFiles({}, {PATH}, "CRC32C"),  # stores changed blocks of it
        LinkFiles(whole(), set(), "CRC32C"),
    ]
    assert unchanged_checksum(links, PATH, 16384, "CRC32C") is None


def test_a_size_or_algorithm_change_is_read_back() -> None:
    truncated = [LinkFiles({}, set(), "CRC32C"), LinkFiles(whole(size=24576), set(), "CRC32C")]
    assert unchanged_checksum(truncated, PATH, 16384, "CRC32C") is None
    other = [LinkFiles({}, set(), "SHA256"), LinkFiles(whole(), set(), "CRC32C")]
    assert unchanged_checksum(other, PATH, 16384, "SHA256") is None


def test_a_file_whole_in_a_middle_link_takes_that_links_checksum() -> None:
    links = [
        LinkFiles({}, set(), "CRC32C"),
        LinkFiles(whole(checksum="beef"), set(), "CRC32C"),  # created after the full
        LinkFiles(whole(checksum="old"), set(), "CRC32C"),
    ]
    assert unchanged_checksum(links, PATH, 16384, "CRC32C") == "beef"
