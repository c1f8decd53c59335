"""A file's CRC32C from the CRC32Cs of its pieces, in file order, without reading it again.

With a CRC's pre- and post-conditioning, crc(A + B) = shift(crc(A), len(B)) ^ crc(B), where
shift(c, n) is what feeding n zero bytes does to the register: linear over GF(2) in c, so
for n a power of two of blocks it is four byte tables (built once from 32 basis vectors,
each level the square of the one below). The chain restore writes each file's blocks out
of order, newest backup first; it keeps each written run's CRC32C and joins them here.
"""

from __future__ import annotations

import google_crc32c

_Tables = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]


def _apply(tables: _Tables, crc: int) -> int:
    t0, t1, t2, t3 = tables
    return t0[crc & 0xFF] ^ t1[(crc >> 8) & 0xFF] ^ t2[(crc >> 16) & 0xFF] ^ t3[crc >> 24]


def _tables(basis: list[int]) -> _Tables:
    """Byte tables of the linear map whose image of bit i is basis[i]."""
    out = []
    for byte in range(4):
        table = [0] * 256
        for value in range(1, 256):
            low = value & -value  # table[value] = table[value without its lowest bit] ^ that bit's
            table[value] = table[value ^ low] ^ basis[byte * 8 + low.bit_length() - 1]
        out.append(tuple(table))
    return (out[0], out[1], out[2], out[3])


class Crc32cJoin:
    """Joins CRC32Cs of consecutive pieces; pieces are whole blocks but for a file's last."""

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self._levels: list[_Tables] = []  # level j: shift by 2**j blocks
        self._zeros: list[int] = []  # level j: CRC32C of 2**j zero blocks

    def join(self, crc: int, piece_crc: int, piece_size: int) -> int:
        """CRC32C of A + B from crc(A), crc(B) and len(B)."""
        return self.shift(crc, piece_size) ^ piece_crc

    def shift(self, crc: int, size: int) -> int:
        blocks, tail = divmod(size, self.block_size)
        level = 0
        while blocks:
            if blocks & 1:
                crc = _apply(self._level(level), crc)
            blocks >>= 1
            level += 1
        if tail:
            zeros = bytes(tail)
            crc = google_crc32c.extend(crc, zeros) ^ google_crc32c.value(zeros)
        return int(crc)

    def zeros(self, size: int) -> int:
        """CRC32C of `size` zero bytes (blocks no backup of the chain holds)."""
        blocks, tail = divmod(size, self.block_size)
        crc = 0
        level = 0
        while blocks:
            if blocks & 1:
                self._level(level)
                crc = self.shift(crc, self.block_size << level) ^ self._zeros[level]
            blocks >>= 1
            level += 1
        return int(google_crc32c.extend(crc, bytes(tail))) if tail else crc

    def _level(self, level: int) -> _Tables:
        while len(self._levels) <= level:
            if not self._levels:
                zero = bytes(self.block_size)
                crc = int(google_crc32c.value(zero))
                basis = [int(google_crc32c.extend(1 << i, zero)) ^ crc for i in range(32)]
            else:
                below, crc = self._levels[-1], self._zeros[-1]
                basis = [_apply(below, _apply(below, 1 << i)) for i in range(32)]
                crc = _apply(below, crc) ^ crc
            self._levels.append(_tables(basis))
            self._zeros.append(crc)
        return self._levels[level]


__all__ = ["Crc32cJoin"]
