"""Decompression plumbing the codecs share: concatenated streams, and reads of bounded size
from a compressed source (Codec.stream_reader)."""

from __future__ import annotations

import lzma
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol

from core.codecs.codec import Readable


class MultiStream:
    """A stream decompressor (bz2, xz, lz4, zstd) that also reads concatenated streams."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._d: Any = factory()
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
            out.append(self._d.decompress(data))
            if self._d.eof:
                self._eof = True
                data = self._d.unused_data
            else:
                data = b""
        return b"".join(out)


class Bounded(Protocol):
    """A decompressor that takes max_length (bz2, lzma, lz4.frame and the zlib adapter)."""

    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...

    @property
    def eof(self) -> bool: ...

    @property
    def needs_input(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...


class StreamReader(ABC):
    """Decompressed reads of at most n bytes from a compressed source."""

    def __init__(self, name: str, raw: Readable, read_size: int) -> None:
        self.name = name
        self._raw = raw
        self._read_size = read_size
        self._input = b""
        self._exhausted = False
        self._in_stream = False  # inside a stream that has not ended yet

    def read(self, n: int) -> bytes:
        """Up to n decompressed bytes; b'' at the end of the stream."""
        if n <= 0:
            return b""
        return self._read(n)

    @abstractmethod
    def _read(self, n: int) -> bytes: ...

    def _truncated(self) -> ValueError:
        return ValueError(f"truncated {self.name} stream")

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


class BoundedReader(StreamReader):
    """Formats whose decompressor takes max_length: gzip, bzip2, xz and lz4."""

    def __init__(
        self, name: str, factory: Callable[[], Bounded], raw: Readable, read_size: int
    ) -> None:
        super().__init__(name, raw, read_size)
        self._factory = factory
        self._bounded: Bounded | None = None

    def _read(self, n: int) -> bytes:
        while True:
            d = self._bounded
            if d is None or d.eof:
                data = self._next_input()
                if not data:
                    if self._in_stream:
                        raise self._truncated()
                    return b""
                d = self._bounded = self._factory()
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
                raise ValueError(f"corrupt {self.name} stream: {exc}") from None
            if d.eof:
                self._in_stream = False
                self._input = (d.unused_data or b"") + self._input
            if out:
                return out
