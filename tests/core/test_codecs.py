"""Every codec round-trips, in parallel too, and writes streams other tools read."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import tarfile

import lz4.frame
import pytest

from core.codecs import CODECS, codec_for_suffix, get_codec, parse_level
from core.errors import InputError

MiB = 1024 * 1024


def _sample(size: int) -> bytes:
    # Half compressible text, half random: exercises both stored and compressed blocks.
    text = b"".join(b"row %08d: the quick brown fox\n" % i for i in range(size // 64))
    return (text + os.urandom(size // 2))[:size]


@pytest.mark.parametrize("name", sorted(CODECS))
@pytest.mark.parametrize("threads", [1, 3])
def test_round_trip_in_odd_sized_pieces(name: str, threads: int) -> None:
    codec = CODECS[name]
    data = _sample(9 * MiB + 12345)
    compressor = codec.compressor(threads=threads)
    out = bytearray()
    view = memoryview(data)
    step = 777_777
    for i in range(0, len(data), step):
        out += compressor.compress(view[i : i + step])
    out += compressor.flush()
    decompressor = codec.decompressor()
    back = bytearray()
    for i in range(0, len(out), 65_537):
        back += decompressor.decompress(bytes(out[i : i + 65_537]))
    assert decompressor.eof
    assert bytes(back) == data


@pytest.mark.parametrize("name", sorted(CODECS))
def test_empty_input(name: str) -> None:
    codec = CODECS[name]
    assert codec.decompress(codec.compress(b"", threads=2)) == b""


def test_parallel_gzip_is_one_member_that_tarfile_streams() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        payload = _sample(5 * MiB)
        info = tarfile.TarInfo("base/1/1234")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    compressed = CODECS["gzip"].compress(buf.getvalue(), threads=4)
    assert compressed.count(b"\x1f\x8b\x08") >= 1
    with tarfile.open(fileobj=io.BytesIO(compressed), mode="r|gz") as tar:
        member = tar.next()
        assert member is not None and member.name == "base/1/1234"
        extracted = tar.extractfile(member)
        assert extracted is not None and extracted.read() == payload
    assert gzip.decompress(compressed) == buf.getvalue()


def test_parallel_lz4_is_one_frame() -> None:
    data = _sample(10 * MiB)
    compressed = CODECS["lz4"].compress(data, threads=3)
    decompressor = lz4.frame.LZ4FrameDecompressor()
    assert decompressor.decompress(compressed) == data
    assert decompressor.eof and not decompressor.unused_data


def test_system_tools_read_our_gzip(tmp_path: object) -> None:
    data = _sample(3 * MiB)
    compressed = CODECS["gzip"].compress(data, threads=2)
    result = subprocess.run(["gzip", "-dc"], input=compressed, capture_output=True, check=True)
    assert result.stdout == data


def test_names_suffixes_and_levels() -> None:
    assert codec_for_suffix("000000010000000000000001.zst") == (
        "000000010000000000000001",
        CODECS["zstd"],
    )
    assert codec_for_suffix("00000002.history") == ("00000002.history", None)
    assert get_codec(None) is None
    with pytest.raises(InputError):
        get_codec("brotli")
    assert parse_level(CODECS["zstd"], "high") == 9
    assert parse_level(CODECS["gzip"], "42") == 9
    assert parse_level(CODECS["lz4"], "low") == 0
    with pytest.raises(InputError):
        parse_level(CODECS["gzip"], "fast")


def test_what_says_parallel_is_parallel() -> None:
    # cramjam holds the GIL and bz2 has no parallel form: both compress on one core.
    from core.codecs import get_codec

    assert [n for n in ("gzip", "lz4", "zstd", "snappy", "bzip2") if get_codec(n).parallel] == [
        "gzip",
        "lz4",
        "zstd",
    ]
