"""bzip2: single-threaded (the format has no cheap parallel form here)."""

from __future__ import annotations

import bz2
from functools import partial

from core.codecs.codec import Codec, Factories
from core.codecs.streams import BoundedReader, MultiStream


class Bz2Compressor:
    def __init__(self, level: int, threads: int) -> None:
        self._c = bz2.BZ2Compressor(max(1, level))

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._c.compress(data)

    def flush(self) -> bytes:
        return self._c.flush()


BZIP2 = Codec(
    "bzip2",
    ".bz2",
    (1, 5, 9),
    (1, 9),
    9,
    False,
    Factories(
        Bz2Compressor,
        partial(MultiStream, bz2.BZ2Decompressor),
        partial(BoundedReader, "bzip2", bz2.BZ2Decompressor),
    ),
)
