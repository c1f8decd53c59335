"""bzip2: single-threaded (the format has no cheap parallel form here)."""

from __future__ import annotations

import bz2
from functools import partial

from core.codecs.codec import Codec, Factories
from core.codecs.streams import BoundedReader, MultiStream

FACTORIES = Factories(
    lambda level, threads: bz2.BZ2Compressor(max(1, level)),
    partial(MultiStream, bz2.BZ2Decompressor),
    partial(BoundedReader, "bzip2", bz2.BZ2Decompressor),
)
BZIP2 = Codec("bzip2", ".bz2", (1, 5, 9), (1, 9), 9, False, FACTORIES)
