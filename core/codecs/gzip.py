"""gzip: one member, deflated in parallel blocks joined by sync flushes (as pigz does)."""

from __future__ import annotations

import struct
import time
import zlib
from functools import partial

from core.codecs.blocks import BlockStream
from core.codecs.codec import Codec, Compressor, Factories, MiB
from core.codecs.streams import BoundedReader, MultiStream

GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around deflate


class ParallelGzip(BlockStream):
    """One gzip member from blocks deflated in parallel, each primed with the previous 32 KiB."""

    BLOCK = 1 * MiB
    KEEP_TAIL = 32 * 1024

    def __init__(self, level: int, threads: int) -> None:
        self._level = level
        self._crc = 0
        self._size = 0
        self._header = struct.pack("<BBBBIBB", 0x1F, 0x8B, 8, 0, int(time.time()), 0, 255)
        super().__init__(threads)

    def header(self) -> bytes:
        return self._header

    def _block(self, block: bytes, dictionary: bytes, last: bool) -> bytes:
        if dictionary:
            c = zlib.compressobj(self._level, zlib.DEFLATED, -zlib.MAX_WBITS, zdict=dictionary)
        else:
            c = zlib.compressobj(self._level, zlib.DEFLATED, -zlib.MAX_WBITS)
        return c.compress(block) + c.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)

    def compress(self, data: bytes | memoryview) -> bytes:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        return super().compress(data)

    def trailer(self) -> bytes:
        return struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF)


def _compressor(level: int, threads: int) -> Compressor:
    if threads > 1:
        return ParallelGzip(level, threads)
    return zlib.compressobj(level, zlib.DEFLATED, GZIP_WBITS)


class ZlibBounded:
    """zlib's decompressobj in the needs_input/unused_data shape of bz2 and lzma."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(GZIP_WBITS)
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


# Concatenated members are read through (some tools write those).
FACTORIES = Factories(
    _compressor,
    partial(MultiStream, partial(zlib.decompressobj, GZIP_WBITS)),
    partial(BoundedReader, "gzip", ZlibBounded),
)
GZIP = Codec("gzip", ".gz", (1, 6, 9), (1, 9), 6, True, FACTORIES)
