"""A compression format as the engine sees it: its name, suffix, levels and factories."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

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
class Factories:
    """What a codec module provides: a compressor for (level, threads), a decompressor, and
    a bounded stream reader for (source, read size)."""

    compressor: Callable[[int, int], Compressor]
    decompressor: Callable[[], Decompressor]
    reader: Callable[[Readable, int], Readable]


@dataclass(frozen=True)
class Codec:
    """One compression format: its name, the object suffix, and its level range."""

    name: str
    suffix: str
    levels: tuple[int, int, int]  # barman-cloud's low / medium / high
    level_range: tuple[int, int]
    default_level: int
    parallel: bool
    factories: Factories = field(repr=False, compare=False)

    def clamp(self, level: int | None) -> int:
        if level is None:
            return self.default_level
        low, high = self.level_range
        return max(low, min(high, level))

    def compressor(self, level: int | None = None, threads: int = 1) -> Compressor:
        """A streaming compressor; threads > 1 uses that many cores where the format allows."""
        return self.factories.compressor(self.clamp(level), max(1, threads))

    def decompressor(self) -> Decompressor:
        return self.factories.decompressor()

    def stream_reader(self, raw: Readable, read_size: int = MiB) -> Readable:
        """A reader of the decompressed stream whose reads return at most n bytes each.

        Unlike decompressor(), memory stays bounded whatever the compression ratio (a run
        of zeros can expand 30,000-fold); concatenated streams are read through, and a
        stream that ends early raises ValueError.
        """
        return self.factories.reader(raw, read_size)

    def compress(self, data: bytes, level: int | None = None, threads: int = 1) -> bytes:
        c = self.compressor(level, threads)
        return c.compress(data) + c.flush()

    def decompress(self, data: bytes) -> bytes:
        d = self.decompressor()
        out = d.decompress(data)
        if not d.eof:
            raise ValueError(f"truncated {self.name} stream")
        return out
