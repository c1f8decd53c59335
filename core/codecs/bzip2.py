"""bzip2: one stream whose blocks are compressed in parallel (as lbzip2 writes them).

A bzip2 stream is a header, blocks that each stand alone (their own Huffman tables and CRC)
packed back to back at bit granularity, and an end marker carrying the combined CRC. Each
worker compresses a piece small enough to be exactly one block with the bz2 module (which
releases the GIL); the blocks are then spliced bit-exactly into one stream. The result is
a single ordinary stream: Python's tarfile `r|bz2` (barman-cloud 3.19's restore), bunzip2
and bz2.BZ2Decompressor read it unchanged.
"""

from __future__ import annotations

import bz2
import struct
from functools import partial

from core.codecs.blocks import BlockStream
from core.codecs.codec import Codec, Compressor, Factories
from core.codecs.streams import BoundedReader, MultiStream

BLOCK_MAGIC = 0x314159265359
END_MAGIC = 0x177245385090
HEADER_BITS = 32  # "BZh" and the level digit
MAGIC_BITS = 48
CRC_BITS = 32
_RECORD = struct.Struct(">II")  # a block's bit count and CRC, ahead of its bits


def block_input(level: int) -> int:
    """The most input that is always one block: bzip2's first run-length pass turns 4 equal
    bytes into 5, and a block holds 100k x level - 19 bytes after it."""
    return (100_000 * level - 19) * 4 // 5


def lone_block(stream: bytes) -> tuple[int, int, int]:
    """(bits, bit count, CRC) of the one block of a one-block bzip2 stream."""
    value = int.from_bytes(stream, "big")
    total = len(stream) * 8
    for pad in range(8):
        tail = value >> pad
        crc = tail & 0xFFFFFFFF
        if value & ((1 << pad) - 1) or (tail >> CRC_BITS) & ((1 << MAGIC_BITS) - 1) != END_MAGIC:
            continue
        count = total - pad - MAGIC_BITS - CRC_BITS - HEADER_BITS
        bits = (value >> (pad + MAGIC_BITS + CRC_BITS)) & ((1 << count) - 1)
        # One block: its own CRC (right after its magic) is the stream's combined CRC.
        if (
            bits >> (count - MAGIC_BITS) == BLOCK_MAGIC
            and (bits >> (count - MAGIC_BITS - CRC_BITS)) & 0xFFFFFFFF == crc
        ):
            return bits, count, crc
    raise ValueError("bz2 did not produce a one-block stream")


class BitSplicer:
    """Packs blocks' bits back to back into whole bytes, and folds their CRCs together."""

    def __init__(self) -> None:
        self._carry = 0
        self._carry_bits = 0
        self.crc = 0

    def add(self, bits: int, count: int) -> bytes:
        value = (self._carry << count) | bits
        total = self._carry_bits + count
        keep = total % 8
        self._carry, self._carry_bits = value & ((1 << keep) - 1), keep
        return (value >> keep).to_bytes(total // 8, "big")

    def add_block(self, bits: int, count: int, crc: int) -> bytes:
        self.crc = (((self.crc << 1) | (self.crc >> 31)) & 0xFFFFFFFF) ^ crc
        return self.add(bits, count)

    def finish(self) -> bytes:
        """The end marker, the combined CRC and the last byte's zero padding."""
        out = self.add((END_MAGIC << CRC_BITS) | self.crc, MAGIC_BITS + CRC_BITS)
        if self._carry_bits:
            out += bytes([self._carry << (8 - self._carry_bits)])
        self._carry_bits = 0
        return out


class ParallelBzip2(BlockStream):
    """One bzip2 stream of one-block pieces compressed on `threads` cores."""

    def __init__(self, level: int, threads: int) -> None:
        self._level = level
        self.BLOCK = block_input(level)
        self._splicer = BitSplicer()
        self._pending = b""  # records the pipeline gave back, not yet spliced
        self._header = b"BZh" + str(level).encode()
        super().__init__(threads)

    def header(self) -> bytes:
        return b""  # the records are not the stream: _splice writes the header first

    def _block(self, block: bytes, _: bytes, last: bool) -> bytes:
        """One record: bit count, CRC and the block's bits (a worker's whole job)."""
        if not block:
            return b""
        bits, count, crc = lone_block(bz2.compress(block, self._level))
        return _RECORD.pack(count, crc) + bits.to_bytes((count + 7) // 8, "big")

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._splice(super().compress(data))

    def flush(self) -> bytes:
        return self._splice(super().flush()) + self._splicer.finish()

    def _splice(self, produced: bytes) -> bytes:
        out = [self._header]
        self._header = b""
        buffer = self._pending + produced
        offset = 0
        while len(buffer) - offset >= _RECORD.size:
            count, crc = _RECORD.unpack_from(buffer, offset)
            end = offset + _RECORD.size + (count + 7) // 8
            if end > len(buffer):
                break
            bits = int.from_bytes(buffer[offset + _RECORD.size : end], "big")
            out.append(self._splicer.add_block(bits, count, crc))
            offset = end
        self._pending = buffer[offset:]
        return b"".join(out)


def _compressor(level: int, threads: int) -> Compressor:
    if threads > 1:
        return ParallelBzip2(max(1, level), threads)
    return bz2.BZ2Compressor(max(1, level))


FACTORIES = Factories(
    _compressor,
    partial(MultiStream, bz2.BZ2Decompressor),
    partial(BoundedReader, "bzip2", bz2.BZ2Decompressor),
)
BZIP2 = Codec("bzip2", ".bz2", (1, 5, 9), (1, 9), 9, True, FACTORIES)
