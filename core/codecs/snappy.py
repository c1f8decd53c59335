"""snappy: one framed stream of chunks, compressed in parallel."""

from __future__ import annotations

from core.codecs.blocks import BlockStream
from core.codecs.codec import Codec, Compressor, Factories, MiB, Readable
from core.codecs.streams import StreamReader

SNAPPY_FEED = 64 * 1024  # a framed chunk holds at most 64 KiB: output stays small


class ParallelSnappy(BlockStream):
    """One framed snappy stream; 1 MiB blocks are framed in parallel, later stream headers
    dropped (a framed chunk holds 64 KiB: larger blocks would only hold more memory)."""

    BLOCK = 1 * MiB
    STREAM_HEADER = b"\xff\x06\x00\x00sNaPpY"

    def __init__(self, level: int, threads: int) -> None:
        super().__init__(threads)

    def header(self) -> bytes:
        return self.STREAM_HEADER

    def _block(self, block: bytes, _: bytes, last: bool) -> bytes:
        if not block:
            return b""
        import cramjam  # imported by the codec in use only

        framed = bytes(cramjam.snappy.compress(block))
        return framed[len(self.STREAM_HEADER) :]


def _compressor(level: int, threads: int) -> Compressor:
    # cramjam (2.x) releases the GIL while it compresses: the blocks use every core.
    return ParallelSnappy(level, threads)


class SnappyDecompressor:
    def __init__(self) -> None:
        import cramjam

        self._d = cramjam.snappy.Decompressor()
        self._pending = b""
        self._seen = False

    @property
    def eof(self) -> bool:
        # A framed stream has no end marker: complete when no partial chunk is buffered.
        return self._seen and not self._pending

    def decompress(self, data: bytes | memoryview) -> bytes:
        buf = self._pending + bytes(data)
        self._seen = self._seen or bool(buf)
        end = 0
        while end + 4 <= len(buf):
            length = int.from_bytes(buf[end + 1 : end + 4], "little")
            if end + 4 + length > len(buf):
                break
            end += 4 + length
        self._pending = buf[end:]
        if not end:
            return b""
        chunks = buf[:end]
        # cramjam's decoder takes each call as a stream of its own (as python-snappy does).
        if not chunks.startswith(ParallelSnappy.STREAM_HEADER):
            chunks = ParallelSnappy.STREAM_HEADER + chunks
        self._d.decompress(chunks)
        return bytes(self._d.flush())


class SnappyReader(StreamReader):
    """Bounded reads of a framed stream, fed to the decoder a framed chunk at a time."""

    def __init__(self, raw: Readable, read_size: int) -> None:
        super().__init__("snappy", raw, read_size)
        self._snappy: SnappyDecompressor | None = None
        self._pending = b""  # output not yet returned

    def _read(self, n: int) -> bytes:
        while not self._pending:
            if self._snappy is None:
                self._snappy = SnappyDecompressor()
            if not self._input:
                self._input = self._next_input()
                if not self._input:
                    if not self._snappy.eof and self._in_stream:
                        raise self._truncated()
                    return b""
            piece, self._input = self._input[:SNAPPY_FEED], self._input[SNAPPY_FEED:]
            self._in_stream = True
            try:
                self._pending = self._snappy.decompress(piece)
            except Exception as exc:  # cramjam raises its own error types
                raise ValueError(f"corrupt snappy stream: {exc}") from None
        out, self._pending = self._pending[:n], self._pending[n:]
        return out


SNAPPY = Codec(
    "snappy",
    ".snappy",
    (0, 0, 0),
    (0, 0),
    0,
    True,
    Factories(_compressor, SnappyDecompressor, SnappyReader),
)
