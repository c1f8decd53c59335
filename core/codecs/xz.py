"""xz: single-threaded (the format has no cheap parallel form here)."""

from __future__ import annotations

import lzma
from functools import partial

from core.codecs.codec import Codec, Factories
from core.codecs.streams import BoundedReader, MultiStream

FACTORIES = Factories(
    lambda level, threads: lzma.LZMACompressor(format=lzma.FORMAT_XZ, preset=level),
    partial(MultiStream, lzma.LZMADecompressor),
    partial(BoundedReader, "xz", lzma.LZMADecompressor),
)
XZ = Codec("xz", ".xz", (1, 3, 5), (0, 9), 3, False, FACTORIES)
