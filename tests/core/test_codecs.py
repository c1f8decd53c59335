"""Every codec round-trips, in parallel too, and writes streams other tools read."""

from __future__ import annotations

import bz2
import gzip
import io
import os
import subprocess
import tarfile
import threading
import time

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


def _compressing_threads(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> set[str]:
    """The names of the threads that call module.name (the library's block compressor)."""
    seen: set[str] = set()
    original = getattr(module, name)

    def spy(*args: object, **kwargs: object) -> object:
        seen.add(threading.current_thread().name)
        time.sleep(0.05)  # each block long enough that the pool needs more than one thread
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return seen


@pytest.mark.parametrize(
    ("name", "module", "function"),
    [("bzip2", "bz2", "compress"), ("snappy", "cramjam.snappy", "compress")],
)
def test_bzip2_and_snappy_compress_on_several_cores(
    monkeypatch: pytest.MonkeyPatch, name: str, module: str, function: str
) -> None:
    import importlib

    top, _, inner = module.partition(".")
    owner = importlib.import_module(top)
    owner = getattr(owner, inner) if inner else owner  # cramjam.snappy is not a module of its own
    seen = _compressing_threads(monkeypatch, owner, function)
    data = _sample(12 * MiB)
    assert CODECS[name].decompress(CODECS[name].compress(data, threads=4)) == data
    workers = {thread for thread in seen if thread.startswith("pgvault-codec")}
    assert len(workers) >= 2, seen


def test_parallel_bzip2_is_one_stream_that_tarfile_and_bunzip2_read() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        payload = _sample(3 * MiB) + bytes(2 * MiB) + b"abcd" * 300_000
        info = tarfile.TarInfo("base/1/1234")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    for level in (1, 9):
        compressed = CODECS["bzip2"].compress(buf.getvalue(), level, threads=3)
        # One stream: the stream reader of barman-cloud 3.19's restore stops after the first.
        decompressor = bz2.BZ2Decompressor()
        assert decompressor.decompress(compressed) == buf.getvalue()
        assert decompressor.eof and not decompressor.unused_data
        with tarfile.open(fileobj=io.BytesIO(compressed), mode="r|bz2") as tar:
            member = tar.next()
            assert member is not None
            extracted = tar.extractfile(member)
            assert extracted is not None and extracted.read() == payload
        result = subprocess.run(["bzip2", "-dc"], input=compressed, capture_output=True, check=True)
        assert result.stdout == buf.getvalue()
