"""xz: single-threaded (the format has no cheap parallel form here)."""

from __future__ import annotations

import lzma
from functools import partial

from core.codecs.codec import Codec, Factories
from core.codecs.streams import BoundedReader, MultiStream


class XzCompressor:
    def __init__(self, level: int, threads: int) -> None:
        self._c = lzma.LZMACompressor(format=lzma.FORMAT_XZ, preset=level)

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._c.compress(data)

    def flush(self) -> bytes:
        return self._c.flush()


XZ = Codec(
    "xz",
    ".xz",
    (1, 3, 5),
    (0, 9),
    3,
    False,
    Factories(
        XzCompressor,
        partial(MultiStream, lzma.LZMADecompressor),
        partial(BoundedReader, "xz", lzma.LZMADecompressor),
    ),
)
