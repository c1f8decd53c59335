"""zstd: one frame from zstd's own worker threads."""

from __future__ import annotations

from functools import partial
from typing import Any

from core.codecs.codec import Codec, Compressor, Factories, MiB, Readable
from core.codecs.streams import MultiStream, StreamReader

ZSTD_MAGIC = 0xFD2FB528
SKIPPABLE_MAGIC = 0x184D2A50  # the low 4 bits vary (RFC 8878 3.1.2)
RESERVED_BLOCK = 3
JOB_SIZE = 1 * MiB  # input per zstd worker job (the smallest zstd takes is 512 KiB)


def _compressor(level: int, threads: int) -> Compressor:
    import zstandard  # imported by the codec in use only: archive_command pays per call

    # zstd's default job for its worker threads (4 x the window, 8 MiB at level 3) keeps
    # tens of MB per worker in buffers (input, output, the overlap). 1 MiB jobs compress as
    # fast and to the same size on the data pgvault streams (bench/README.md, "Memory"):
    # with 2 threads the compressor holds about 18 MB instead of 46 MB with 4 MiB jobs.
    params = zstandard.ZstdCompressionParameters.from_level(
        level,
        threads=threads if threads > 1 else 0,
        write_checksum=True,
        job_size=JOB_SIZE if threads > 1 else 0,
    )
    compressor: Compressor = zstandard.ZstdCompressor(compression_params=params).compressobj()
    return compressor


def _decompressobj() -> Any:
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj()


class _ZstdFrames:
    """Follows the frame and block headers of a zstd stream as its bytes go by.

    python-zstandard's stream reader ends quietly when its input ends inside a frame; this
    tracker knows whether the input stopped between frames (RFC 8878: frame header, blocks
    up to the last one, optional content checksum; skippable frames skipped).
    """

    def __init__(self) -> None:
        self._need = 4  # bytes wanted for the next header
        self._header = bytearray()
        self._state = "magic"
        self._skip = 0
        self._checksum = False
        self.started = False

    @property
    def between_frames(self) -> bool:
        return self._state == "magic" and not self._header and not self._skip

    def update(self, data: bytes) -> None:
        view = memoryview(data)
        while len(view):
            if self._skip:
                step = min(self._skip, len(view))
                self._skip -= step
                view = view[step:]
                continue
            take = min(self._need - len(self._header), len(view))
            self._header += view[:take]
            view = view[take:]
            if len(self._header) == self._need:
                self._advance(bytes(self._header))

    def _advance(self, header: bytes) -> None:
        self._header.clear()
        state = self._state
        if state == "magic":
            self.started = True
            magic = int.from_bytes(header, "little")
            if magic == ZSTD_MAGIC:
                self._state, self._need = "descriptor", 1
            elif magic & 0xFFFFFFF0 == SKIPPABLE_MAGIC:
                self._state, self._need = "skippable", 4
            else:
                raise ValueError("not a zstd frame")
        elif state == "skippable":
            self._skip = int.from_bytes(header, "little")
            self._state, self._need = "magic", 4
        elif state == "descriptor":
            flags = header[0]
            single = bool(flags & 0x20)
            fcs = (0, 2, 4, 8)[flags >> 6] or (1 if single else 0)
            did = (0, 1, 2, 4)[flags & 0x03]
            self._checksum = bool(flags & 0x04)
            self._skip = (0 if single else 1) + did + fcs
            self._state, self._need = "block", 3
        elif state == "block":
            value = int.from_bytes(header, "little")
            last, kind, size = value & 1, (value >> 1) & 3, value >> 3
            if kind == RESERVED_BLOCK:
                raise ValueError("corrupt zstd block header")
            self._skip = 1 if kind == 1 else size
            if last:
                if self._checksum:
                    self._skip += 4
                self._state, self._need = "magic", 4


class _Tap:
    """A source that shows every byte it hands out to the zstd frame tracker."""

    def __init__(self, raw: Readable, frames: _ZstdFrames) -> None:
        self._raw = raw
        self._frames = frames

    def read(self, n: int) -> bytes:
        data = self._raw.read(n)
        if data:
            self._frames.update(data)
        return data


class ZstdReader(StreamReader):
    """python-zstandard's stream reader, told by the frame tracker where the input ended."""

    def __init__(self, raw: Readable, read_size: int) -> None:
        import zstandard

        super().__init__("zstd", raw, read_size)
        self._error = zstandard.ZstdError
        self._frames = _ZstdFrames()
        self._zstd: Any = zstandard.ZstdDecompressor().stream_reader(
            _Tap(raw, self._frames),  # type: ignore[arg-type]  # read(n) is all it uses
            read_size=read_size,
            read_across_frames=True,
        )

    def _read(self, n: int) -> bytes:
        try:
            out: bytes = self._zstd.read(n)
        except self._error as exc:
            raise ValueError(f"corrupt zstd stream: {exc}") from None
        if not out and not self._frames.between_frames:
            raise self._truncated()
        return out


FACTORIES = Factories(_compressor, partial(MultiStream, _decompressobj), ZstdReader)
ZSTD = Codec("zstd", ".zst", (1, 4, 9), (-22, 22), 3, True, FACTORIES)
