"""The parallel plumbing every block codec shares: blocks compressed on a thread pool,
emitted in order behind the format's header (gzip, lz4 and snappy)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class BlockPipeline:
    """Cuts input into blocks, compresses them on a thread pool, emits output in order.

    At most threads + 1 blocks are pending (each thread busy, one more ready to start),
    which bounds memory to about (threads + 2) x 2 blocks, input and output.
    """

    def __init__(
        self,
        block_size: int,
        threads: int,
        compress_block: Callable[[bytes, bytes, bool], bytes],
        keep_tail: int = 0,
    ) -> None:
        self._block_size = block_size
        self._compress_block = compress_block
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pgvault-codec")
        self._max_pending = threads + 1
        self._pending: deque[Future[bytes]] = deque()
        self._buffer = bytearray()
        self._keep_tail = keep_tail
        self._previous_tail = b""

    def feed(self, data: bytes | memoryview) -> bytes:
        self._buffer += data
        out = []
        while len(self._buffer) >= self._block_size:
            with memoryview(self._buffer) as view:  # one copy, not a slice and then a copy
                block = bytes(view[: self._block_size])
            del self._buffer[: self._block_size]
            out.append(self._submit(block, last=False))
        return b"".join(out)

    def finish(self) -> bytes:
        out = [self._submit(bytes(self._buffer), last=True)]
        self._buffer = bytearray()
        while self._pending:
            out.append(self._pending.popleft().result())
        self._pool.shutdown(wait=True)
        return b"".join(out)

    def close(self) -> None:
        """Drop pending blocks and stop the threads (an aborted stream)."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _submit(self, block: bytes, last: bool) -> bytes:
        tail = self._previous_tail
        if self._keep_tail:
            self._previous_tail = block[-self._keep_tail :]
        self._pending.append(self._pool.submit(self._compress_block, block, tail, last))
        ready = []
        while self._pending and (len(self._pending) > self._max_pending or self._pending[0].done()):
            ready.append(self._pending.popleft().result())
        return b"".join(ready)


class BlockStream(ABC):
    """One stream of a block format: the header once, then blocks compressed in parallel.

    A format names its BLOCK size, its header, how one block is compressed (given the end
    of the previous block, KEEP_TAIL bytes of it) and, if it has one, its trailer.
    """

    BLOCK: int
    KEEP_TAIL = 0

    def __init__(self, threads: int) -> None:
        self._started = False
        self._blocks = BlockPipeline(self.BLOCK, threads, self._block, keep_tail=self.KEEP_TAIL)

    @abstractmethod
    def header(self) -> bytes: ...

    @abstractmethod
    def _block(self, block: bytes, previous: bytes, last: bool) -> bytes: ...

    def trailer(self) -> bytes:
        return b""

    def _head(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self.header()

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._head() + self._blocks.feed(data)

    def flush(self) -> bytes:
        return self._head() + self._blocks.finish() + self.trailer()

    def close(self) -> None:
        self._blocks.close()
