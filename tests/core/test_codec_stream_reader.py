"""Codec.stream_reader: bounded reads whatever the ratio, concatenated streams, truncation."""

from __future__ import annotations

import io
import os

import pytest

from core.codecs import CODECS

MiB = 1024 * 1024


def _read_all(reader: object, n: int) -> tuple[bytes, int]:
    parts, largest = [], 0
    while chunk := reader.read(n):  # type: ignore[attr-defined]
        parts.append(chunk)
        largest = max(largest, len(chunk))
    return b"".join(parts), largest


@pytest.mark.parametrize("name", sorted(CODECS))
def test_reads_are_bounded_and_streams_concatenate(name: str) -> None:
    codec = CODECS[name]
    # 64 MiB of zeros compress thousands of times: one decompress call would hold it all.
    data = os.urandom(MiB) + bytes(64 * MiB) + b"tail" * 1000
    stored = codec.compress(data, threads=2) + codec.compress(b"second stream")
    out, largest = _read_all(codec.stream_reader(io.BytesIO(stored)), 2 * MiB)
    assert out == data + b"second stream"
    assert largest <= 2 * MiB


@pytest.mark.parametrize("name", sorted(CODECS))
def test_a_stream_cut_short_raises(name: str) -> None:
    codec = CODECS[name]
    stored = codec.compress(os.urandom(3 * MiB) + bytes(MiB), threads=1)
    for keep in (len(stored) - 3, len(stored) // 2, 40):
        with pytest.raises(ValueError, match=r"truncated|corrupt"):
            _read_all(codec.stream_reader(io.BytesIO(stored[:keep])), MiB)


def test_garbage_is_not_a_stream() -> None:
    for name in ("zstd", "gzip", "lz4", "bzip2", "xz"):
        with pytest.raises(ValueError):
            _read_all(CODECS[name].stream_reader(io.BytesIO(os.urandom(4096))), MiB)
