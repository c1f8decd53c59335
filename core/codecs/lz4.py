"""lz4: one frame of independent blocks, compressed in parallel."""

from __future__ import annotations

import struct
from functools import partial
from typing import Any

from core.codecs.blocks import BlockStream
from core.codecs.codec import Codec, Factories, MiB
from core.codecs.streams import BoundedReader, MultiStream

HIGH_COMPRESSION = 3  # lz4's HC mode starts at level 3


class ParallelLz4(BlockStream):
    """One lz4 frame of independent 1 MiB blocks, compressed in parallel (no checksums:
    pgvault's manifest carries them). lz4 looks back 64 KiB at most, so 1 MiB blocks compress
    as well as 4 MiB ones and hold a quarter of the memory in the pipeline."""

    BLOCK = 1 * MiB

    def __init__(self, level: int, threads: int) -> None:
        self._level = level
        super().__init__(threads)

    def header(self) -> bytes:
        return frame_header()

    def _block(self, block: bytes, _: bytes, last: bool) -> bytes:
        import lz4.block  # imported by the codec in use only: archive_command pays per call

        out = b""
        if block:
            mode = "high_compression" if self._level >= HIGH_COMPRESSION else "default"
            packed = lz4.block.compress(block, mode=mode, compression=self._level, store_size=False)
            if len(packed) < len(block):
                out = struct.pack("<I", len(packed)) + packed
            else:
                out = struct.pack("<I", len(block) | 0x80000000) + block
        return out + (b"\x00\x00\x00\x00" if last else b"")


def frame_header() -> bytes:
    """Magic, FLG (version 1, independent blocks), BD (1 MiB blocks), header checksum."""
    import lz4.frame

    compressor = lz4.frame.LZ4FrameCompressor(
        block_size=lz4.frame.BLOCKSIZE_MAX1MB, block_linked=False, content_checksum=False
    )
    header: bytes = compressor.begin()
    return header


def _decompressor() -> Any:
    import lz4.frame

    return lz4.frame.LZ4FrameDecompressor()


FACTORIES = Factories(
    ParallelLz4,
    partial(MultiStream, _decompressor),
    partial(BoundedReader, "lz4", _decompressor),
)
LZ4 = Codec("lz4", ".lz4", (0, 6, 10), (0, 16), 0, True, FACTORIES)
