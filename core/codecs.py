"""Compression: gzip, bzip2, xz, snappy, lz4 and zstd, streaming, on several cores.

Every stream pgvault writes is one a single-threaded reader decodes unchanged (barman-cloud
reads base backups through tarfile's stream modes and lz4's frame decompressor):
- gzip is one member, compressed in parallel blocks joined by sync flushes (as pigz does);
- lz4 is one frame of independent blocks, compressed in parallel;
- snappy is one framed stream of chunks, compressed in parallel;
- zstd is one frame from zstd's own worker threads;
- bzip2 and xz are single-threaded (their formats have no cheap parallel form here).
"""

from __future__ import annotations

import bz2
import lzma
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import cramjam
import lz4.block
import lz4.frame
import zstandard

from core.errors import InputError

MiB = 1024 * 1024


class Compressor(Protocol):
    def compress(self, data: bytes | memoryview) -> bytes: ...

    def flush(self) -> bytes: ...


class Readable(Protocol):
    def read(self, n: int, /) -> bytes: ...


class Decompressor(Protocol):
    def decompress(self, data: bytes | memoryview) -> bytes: ...

    @property
    def eof(self) -> bool: ...


@dataclass(frozen=True)
class Codec:
    """One compression format: its name, the object suffix, and its level range."""

    name: str
    suffix: str
    levels: tuple[int, int, int]  # barman-cloud's low / medium / high
    level_range: tuple[int, int]
    default_level: int
    parallel: bool

    def clamp(self, level: int | None) -> int:
        if level is None:
            return self.default_level
        low, high = self.level_range
        return max(low, min(high, level))

    def compressor(self, level: int | None = None, threads: int = 1) -> Compressor:
        """A streaming compressor; threads > 1 uses that many cores where the format allows."""
        return _COMPRESSORS[self.name](self.clamp(level), max(1, threads))

    def decompressor(self) -> Decompressor:
        return _DECOMPRESSORS[self.name]()

    def stream_reader(self, raw: Readable, read_size: int = MiB) -> DecompressingReader:
        """A reader of the decompressed stream whose reads return at most n bytes each.

        Unlike decompressor(), memory stays bounded whatever the compression ratio (a run
        of zeros can expand 30,000-fold); concatenated streams are read through, and a
        stream that ends early raises ValueError.
        """
        return DecompressingReader(self, raw, read_size)

    def compress(self, data: bytes, level: int | None = None, threads: int = 1) -> bytes:
        c = self.compressor(level, threads)
        return c.compress(data) + c.flush()

    def decompress(self, data: bytes) -> bytes:
        d = self.decompressor()
        out = d.decompress(data)
        if not d.eof:
            raise ValueError(f"truncated {self.name} stream")
        return out


CODECS: dict[str, Codec] = {
    "gzip": Codec("gzip", ".gz", (1, 6, 9), (1, 9), 6, True),
    "bzip2": Codec("bzip2", ".bz2", (1, 5, 9), (1, 9), 9, False),
    "xz": Codec("xz", ".xz", (1, 3, 5), (0, 9), 3, False),
    "snappy": Codec("snappy", ".snappy", (0, 0, 0), (0, 0), 0, True),
    "lz4": Codec("lz4", ".lz4", (0, 6, 10), (0, 16), 0, True),
    "zstd": Codec("zstd", ".zst", (1, 4, 9), (-22, 22), 3, True),
}
NAMED_LEVELS = ("low", "medium", "high")


def get_codec(name: str | None) -> Codec | None:
    """The codec for a compression name; None means no compression."""
    if name is None or name == "none":
        return None
    try:
        return CODECS[name]
    except KeyError:
        raise InputError(f"unknown compression {name!r}") from None


def codec_for_suffix(filename: str) -> tuple[str, Codec | None]:
    """Split a known compression suffix off a name: ('000…01', zstd) or (name, None)."""
    for codec in CODECS.values():
        if filename.endswith(codec.suffix):
            return filename[: -len(codec.suffix)], codec
    return filename, None


def parse_level(codec: Codec, text: str | None) -> int | None:
    """barman-cloud's --compression-level: low, medium, high or an integer (clamped)."""
    if text is None:
        return None
    if text in NAMED_LEVELS:
        return codec.levels[NAMED_LEVELS.index(text)]
    try:
        return codec.clamp(int(text))
    except ValueError:
        raise InputError(
            f"invalid compression level {text!r}: low, medium, high or a number"
        ) from None


# ---- parallel block compression ------------------------------------------------------------


class _BlockPipeline:
    """Cuts input into blocks, compresses them on a thread pool, emits output in order.

    At most 2 x threads blocks are pending, which bounds memory and keeps every core busy.
    """

    def __init__(
        self,
        block_size: int,
        threads: int,
        compress_block: Callable[[bytes, bytes, bool], bytes],
        keep_tail: int = 0,
    ) -> None:
        self._block_size = block_size
        self._compress_block = compress_block
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pgvault-codec")
        self._max_pending = threads * 2
        self._pending: deque[Future[bytes]] = deque()
        self._buffer = bytearray()
        self._keep_tail = keep_tail
        self._previous_tail = b""

    def feed(self, data: bytes | memoryview) -> bytes:
        self._buffer += data
        out = []
        while len(self._buffer) >= self._block_size:
            block = bytes(self._buffer[: self._block_size])
            del self._buffer[: self._block_size]
            out.append(self._submit(block, last=False))
        return b"".join(out)

    def finish(self) -> bytes:
        out = [self._submit(bytes(self._buffer), last=True)]
        self._buffer = bytearray()
        while self._pending:
            out.append(self._pending.popleft().result())
        self._pool.shutdown(wait=True)
        return b"".join(out)

    def close(self) -> None:
        """Drop pending blocks and stop the threads (an aborted stream)."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _submit(self, block: bytes, last: bool) -> bytes:
        tail = self._previous_tail
        if self._keep_tail:
            self._previous_tail = block[-self._keep_tail :]
        self._pending.append(self._pool.submit(self._compress_block, block, tail, last))
        ready = []
        while self._pending and (len(self._pending) > self._max_pending or self._pending[0].done()):
            ready.append(self._pending.popleft().result())
        return b"".join(ready)


class ParallelGzip:
    """One gzip member from blocks deflated in parallel, each primed with the previous 32 KiB."""

    BLOCK = 1 * MiB

    def __init__(self, level: int, threads: int) -> None:
        self._level = level
        self._crc = 0
        self._size = 0
        self._header = struct.pack("<BBBBIBB", 0x1F, 0x8B, 8, 0, int(time.time()), 0, 255)
        self._started = False
        self._blocks = _BlockPipeline(self.BLOCK, threads, self._deflate, keep_tail=32 * 1024)

    def _deflate(self, block: bytes, dictionary: bytes, last: bool) -> bytes:
        if dictionary:
            c = zlib.compressobj(self._level, zlib.DEFLATED, -zlib.MAX_WBITS, zdict=dictionary)
        else:
            c = zlib.compressobj(self._level, zlib.DEFLATED, -zlib.MAX_WBITS)
        return c.compress(block) + c.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)

    def _head(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self._header

    def compress(self, data: bytes | memoryview) -> bytes:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        return self._head() + self._blocks.feed(data)

    def flush(self) -> bytes:
        body = self._blocks.finish()
        trailer = struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF)
        return self._head() + body + trailer

    def close(self) -> None:
        self._blocks.close()


class ParallelLz4:
    """One lz4 frame of independent 4 MiB blocks, compressed in parallel (no checksums:
    pgvault's manifest carries them)."""

    BLOCK = 4 * MiB
    # Magic, FLG (version 1, independent blocks), BD (4 MiB blocks), header checksum.
    HEADER: bytes = lz4.frame.LZ4FrameCompressor(
        block_size=lz4.frame.BLOCKSIZE_MAX4MB, block_linked=False, content_checksum=False
    ).begin()

    def __init__(self, level: int, threads: int) -> None:
        self._level = level
        self._started = False
        self._blocks = _BlockPipeline(self.BLOCK, threads, self._block)

    def _block(self, block: bytes, _: bytes, last: bool) -> bytes:
        out = b""
        if block:
            mode = "high_compression" if self._level >= 3 else "default"
            packed = lz4.block.compress(block, mode=mode, compression=self._level, store_size=False)
            if len(packed) < len(block):
                out = struct.pack("<I", len(packed)) + packed
            else:
                out = struct.pack("<I", len(block) | 0x80000000) + block
        return out + (b"\x00\x00\x00\x00" if last else b"")

    def _head(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self.HEADER

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._head() + self._blocks.feed(data)

    def flush(self) -> bytes:
        return self._head() + self._blocks.finish()

    def close(self) -> None:
        self._blocks.close()


class ParallelSnappy:
    """One framed snappy stream; 4 MiB blocks are framed in parallel, later stream headers
    dropped."""

    BLOCK = 4 * MiB
    STREAM_HEADER = b"\xff\x06\x00\x00sNaPpY"

    def __init__(self, level: int, threads: int) -> None:
        self._started = False
        self._blocks = _BlockPipeline(self.BLOCK, threads, self._block)

    def _block(self, block: bytes, _: bytes, last: bool) -> bytes:
        if not block:
            return b""
        framed = bytes(cramjam.snappy.compress(block))
        return framed[len(self.STREAM_HEADER) :]

    def _head(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self.STREAM_HEADER

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._head() + self._blocks.feed(data)

    def flush(self) -> bytes:
        return self._head() + self._blocks.finish()

    def close(self) -> None:
        self._blocks.close()


class _Zstd:
    def __init__(self, level: int, threads: int) -> None:
        # zstd's default job for its worker threads (4 x the window, 8 MiB at level 3) keeps
        # tens of MB per worker in buffers; 4 MiB jobs compress as fast and as well on the
        # data pgvault streams, for a fraction of the memory.
        params = zstandard.ZstdCompressionParameters.from_level(
            level,
            threads=threads if threads > 1 else 0,
            write_checksum=True,
            job_size=4 * MiB if threads > 1 else 0,
        )
        self._c = zstandard.ZstdCompressor(compression_params=params).compressobj()

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._c.compress(data)

    def flush(self) -> bytes:
        return self._c.flush()


class _Bz2:
    def __init__(self, level: int, threads: int) -> None:
        self._c = bz2.BZ2Compressor(max(1, level))

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._c.compress(data)

    def flush(self) -> bytes:
        return self._c.flush()


class _Xz:
    def __init__(self, level: int, threads: int) -> None:
        self._c = lzma.LZMACompressor(format=lzma.FORMAT_XZ, preset=level)

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._c.compress(data)

    def flush(self) -> bytes:
        return self._c.flush()


class _GzipSingle:
    def __init__(self, level: int, threads: int) -> None:
        self._c = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._c.compress(data)

    def flush(self) -> bytes:
        return self._c.flush()


def _gzip(level: int, threads: int) -> Compressor:
    return ParallelGzip(level, threads) if threads > 1 else _GzipSingle(level, threads)


_COMPRESSORS: dict[str, Callable[[int, int], Compressor]] = {
    "gzip": _gzip,
    "bzip2": _Bz2,
    "xz": _Xz,
    # cramjam holds the GIL while it compresses, so more threads would only add overhead.
    "snappy": lambda level, threads: ParallelSnappy(level, 1),
    "lz4": ParallelLz4,
    "zstd": _Zstd,
}


# ---- decompression ----------------------------------------------------------------------------


class _ZlibDecompressor:
    """gzip, including several concatenated members (some tools write those)."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._eof = False

    @property
    def eof(self) -> bool:
        return self._eof

    def decompress(self, data: bytes | memoryview) -> bytes:
        out = []
        data = bytes(data)
        while data:
            out.append(self._d.decompress(data))
            if self._d.eof:
                data = self._d.unused_data
                self._eof = not data
                if data:
                    self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                data = b""
        return b"".join(out)


class _MultiStream:
    """bz2, xz and lz4 decompressors that also accept concatenated streams."""

    def __init__(self, factory: Callable[[], object]) -> None:
        self._factory = factory
        self._d: object = factory()
        self._eof = False

    @property
    def eof(self) -> bool:
        return self._eof

    def decompress(self, data: bytes | memoryview) -> bytes:
        out = []
        data = bytes(data)
        while data:
            if self._eof:
                self._d = self._factory()
                self._eof = False
            out.append(self._d.decompress(data))  # type: ignore[attr-defined]
            if self._d.eof:  # type: ignore[attr-defined]
                self._eof = True
                data = self._d.unused_data  # type: ignore[attr-defined]
            else:
                data = b""
        return b"".join(out)


class _SnappyDecompressor:
    def __init__(self) -> None:
        self._d = cramjam.snappy.Decompressor()
        self._pending = b""
        self._seen = False

    @property
    def eof(self) -> bool:
        # A framed stream has no end marker: complete when no partial chunk is buffered.
        return self._seen and not self._pending

    def decompress(self, data: bytes | memoryview) -> bytes:
        buf = self._pending + bytes(data)
        self._seen = self._seen or bool(buf)
        end = 0
        while end + 4 <= len(buf):
            length = int.from_bytes(buf[end + 1 : end + 4], "little")
            if end + 4 + length > len(buf):
                break
            end += 4 + length
        self._pending = buf[end:]
        if not end:
            return b""
        chunks = buf[:end]
        # cramjam's decoder takes each call as a stream of its own (as python-snappy does).
        if not chunks.startswith(ParallelSnappy.STREAM_HEADER):
            chunks = ParallelSnappy.STREAM_HEADER + chunks
        self._d.decompress(chunks)
        return bytes(self._d.flush())


class _ZstdDecompressor:
    def __init__(self) -> None:
        self._d = zstandard.ZstdDecompressor().decompressobj()
        self._eof = False

    @property
    def eof(self) -> bool:
        return self._eof

    def decompress(self, data: bytes | memoryview) -> bytes:
        out = []
        data = bytes(data)
        while data:
            if self._eof:
                self._d = zstandard.ZstdDecompressor().decompressobj()
                self._eof = False
            out.append(self._d.decompress(data))
            if self._d.eof:
                self._eof = True
                data = self._d.unused_data
            else:
                data = b""
        return b"".join(out)


_DECOMPRESSORS: dict[str, Callable[[], Decompressor]] = {
    "gzip": _ZlibDecompressor,
    "bzip2": lambda: _MultiStream(bz2.BZ2Decompressor),
    "xz": lambda: _MultiStream(lzma.LZMADecompressor),
    "snappy": _SnappyDecompressor,
    "lz4": lambda: _MultiStream(lz4.frame.LZ4FrameDecompressor),
    "zstd": _ZstdDecompressor,
}


# ---- bounded streaming decompression ------------------------------------------------------


class _Bounded(Protocol):
    """A decompressor that takes max_length (bz2, lzma, lz4.frame and the zlib adapter)."""

    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...

    @property
    def eof(self) -> bool: ...

    @property
    def needs_input(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...


class _ZlibBounded:
    """zlib's decompressobj in the needs_input/unused_data shape of bz2 and lzma."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._full = False  # the last call filled max_length: output may be pending

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def needs_input(self) -> bool:
        return not self._d.unconsumed_tail and not self._full and not self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data or b""

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        source = self._d.unconsumed_tail + data if self._d.unconsumed_tail else data
        out = self._d.decompress(source, max(0, max_length))
        self._full = max_length > 0 and len(out) == max_length
        return out


_BOUNDED: dict[str, Callable[[], _Bounded]] = {
    "gzip": _ZlibBounded,
    "bzip2": bz2.BZ2Decompressor,
    "xz": lzma.LZMADecompressor,
    "lz4": lz4.frame.LZ4FrameDecompressor,
}
ZSTD_MAGIC = 0xFD2FB528
SNAPPY_FEED = 64 * 1024  # a framed chunk holds at most 64 KiB: output stays small


class _ZstdFrames:
    """Follows the frame and block headers of a zstd stream as its bytes go by.

    python-zstandard's stream reader ends quietly when its input ends inside a frame; this
    tracker knows whether the input stopped between frames (RFC 8878: frame header, blocks
    up to the last one, optional content checksum; skippable frames skipped).
    """

    def __init__(self) -> None:
        self._need = 4  # bytes wanted for the next header
        self._header = bytearray()
        self._state = "magic"
        self._skip = 0
        self._checksum = False
        self.started = False

    @property
    def between_frames(self) -> bool:
        return self._state == "magic" and not self._header and not self._skip

    def update(self, data: bytes) -> None:
        view = memoryview(data)
        while len(view):
            if self._skip:
                step = min(self._skip, len(view))
                self._skip -= step
                view = view[step:]
                continue
            take = min(self._need - len(self._header), len(view))
            self._header += view[:take]
            view = view[take:]
            if len(self._header) == self._need:
                self._advance(bytes(self._header))

    def _advance(self, header: bytes) -> None:
        self._header.clear()
        state = self._state
        if state == "magic":
            self.started = True
            magic = int.from_bytes(header, "little")
            if magic == ZSTD_MAGIC:
                self._state, self._need = "descriptor", 1
            elif magic & 0xFFFFFFF0 == 0x184D2A50:
                self._state, self._need = "skippable", 4
            else:
                raise ValueError("not a zstd frame")
        elif state == "skippable":
            self._skip = int.from_bytes(header, "little")
            self._state, self._need = "magic", 4
        elif state == "descriptor":
            flags = header[0]
            single = bool(flags & 0x20)
            fcs = (0, 2, 4, 8)[flags >> 6] or (1 if single else 0)
            did = (0, 1, 2, 4)[flags & 0x03]
            self._checksum = bool(flags & 0x04)
            self._skip = (0 if single else 1) + did + fcs
            self._state, self._need = "block", 3
        elif state == "block":
            value = int.from_bytes(header, "little")
            last, kind, size = value & 1, (value >> 1) & 3, value >> 3
            if kind == 3:
                raise ValueError("corrupt zstd block header")
            self._skip = 1 if kind == 1 else size
            if last:
                if self._checksum:
                    self._skip += 4
                self._state, self._need = "magic", 4


class DecompressingReader:
    """Decompressed reads of at most n bytes from a compressed source (Codec.stream_reader)."""

    def __init__(self, codec: Codec, raw: Readable, read_size: int = MiB) -> None:
        self.codec = codec
        self._raw = raw
        self._read_size = read_size
        self._input = b""
        self._exhausted = False
        self._bounded: _Bounded | None = None
        self._in_stream = False  # inside a stream that has not ended yet
        self._frames: _ZstdFrames | None = None
        self._zstd: Any = None
        self._snappy: Decompressor | None = None
        self._pending = b""  # snappy output not yet returned
        if codec.name == "zstd":
            self._frames = _ZstdFrames()
            self._zstd = zstandard.ZstdDecompressor().stream_reader(
                _Tap(raw, self._frames),  # type: ignore[arg-type]
                read_size=read_size,
                read_across_frames=True,
            )

    def read(self, n: int) -> bytes:
        """Up to n decompressed bytes; b'' at the end of the stream."""
        if n <= 0:
            return b""
        if self._zstd is not None:
            return self._read_zstd(n)
        if self.codec.name == "snappy":
            return self._read_snappy(n)
        return self._read_bounded(n)

    def _truncated(self) -> ValueError:
        return ValueError(f"truncated {self.codec.name} stream")

    def _read_zstd(self, n: int) -> bytes:
        try:
            out: bytes = self._zstd.read(n)
        except zstandard.ZstdError as exc:
            raise ValueError(f"corrupt zstd stream: {exc}") from None
        assert self._frames is not None
        if not out and not self._frames.between_frames:
            raise self._truncated()
        return out

    def _next_input(self) -> bytes:
        if self._input:
            data, self._input = self._input, b""
            return data
        if self._exhausted:
            return b""
        data = self._raw.read(self._read_size)
        if not data:
            self._exhausted = True
        return data

    def _read_bounded(self, n: int) -> bytes:
        while True:
            d = self._bounded
            if d is None or d.eof:
                data = self._next_input()
                if not data:
                    if self._in_stream:
                        raise self._truncated()
                    return b""
                d = self._bounded = _BOUNDED[self.codec.name]()
                self._in_stream = True
            elif d.needs_input:
                data = self._next_input()
                if not data:
                    raise self._truncated()
            else:
                data = b""
            try:
                out = d.decompress(data, n)
            except (OSError, EOFError, ValueError, RuntimeError, zlib.error, lzma.LZMAError) as exc:
                raise ValueError(f"corrupt {self.codec.name} stream: {exc}") from None
            if d.eof:
                self._in_stream = False
                self._input = (d.unused_data or b"") + self._input
            if out:
                return out

    def _read_snappy(self, n: int) -> bytes:
        while not self._pending:
            if self._snappy is None:
                self._snappy = self.codec.decompressor()
            if not self._input:
                self._input = self._next_input()
                if not self._input:
                    if not self._snappy.eof and self._in_stream:
                        raise self._truncated()
                    return b""
            piece, self._input = self._input[:SNAPPY_FEED], self._input[SNAPPY_FEED:]
            self._in_stream = True
            try:
                self._pending = self._snappy.decompress(piece)
            except Exception as exc:  # cramjam raises its own error types
                raise ValueError(f"corrupt snappy stream: {exc}") from None
        out, self._pending = self._pending[:n], self._pending[n:]
        return out


class _Tap:
    """A source that shows every byte it hands out to the zstd frame tracker."""

    def __init__(self, raw: Readable, frames: _ZstdFrames) -> None:
        self._raw = raw
        self._frames = frames

    def read(self, n: int) -> bytes:
        data = self._raw.read(n)
        if data:
            self._frames.update(data)
        return data
