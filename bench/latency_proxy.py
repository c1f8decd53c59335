"""A TCP proxy on 127.0.0.1 that adds network latency in front of an emulator.

    .venv/bin/python bench/latency_proxy.py --target-port PORT --delay-ms 10 [--tls]

prints the port it listens on, then serves until SIGTERM. From Python, `LatencyProxy` runs
the same proxy in a thread. The kernel's netem qdisc is not available on the bench machine,
so latency is added here instead:

- every chunk read from one side is delivered to the other `delay` seconds after it was read,
  by a per-direction queue and writer task: order is kept and bandwidth is not limited (a
  chunk read while the previous ones wait is not held back by them);
- connection setup: a new connection's first client bytes wait one extra round trip
  (2 x delay), as a TCP handshake would, and one more with `tls` (a TLS 1.3 handshake).

Not modelled: TCP slow start and window limits (a new connection sends at full speed at
once), loss, jitter. Both spare the process-per-segment archivers rather than the pusher.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
import threading

CHUNK = 256 * 1024


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    ready_at: float,
) -> None:
    """Copy reader to writer, each chunk delivered at max(read time, ready_at) + delay."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            at, data = await queue.get()
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    try:
        while True:
            try:
                data = await reader.read(CHUNK)
            except OSError:  # reset: pass it on as an end of stream
                data = b""
            queue.put_nowait((max(loop.time(), ready_at) + delay, data))
            if not data:
                break
        await sender
    finally:
        sender.cancel()


class _Handler:
    """Serves one proxied connection per call."""

    def __init__(self, target_port: int, delay: float, handshakes: int) -> None:
        self.target_port = target_port
        self.delay = delay
        self.handshakes = handshakes

    async def __call__(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        ready_at = loop.time() + self.handshakes * 2 * self.delay
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            client_writer.close()
            return
        for writer in (client_writer, upstream_writer):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.gather(
                _pump(client_reader, upstream_writer, self.delay, ready_at),
                _pump(upstream_reader, client_writer, self.delay, 0.0),
            )
        except OSError:  # one side went away (reset, or gone before its EOF arrived)
            pass
        finally:
            for writer in (client_writer, upstream_writer):
                writer.close()


async def start_server(
    target_port: int, delay: float, tls: bool = False, port: int = 0
) -> asyncio.base_events.Server:
    """Listen on 127.0.0.1:port (0: a free one) and proxy to 127.0.0.1:target_port."""
    handler = _Handler(target_port, delay, 2 if tls else 1)
    return await asyncio.start_server(handler, "127.0.0.1", port)


def _port_of(server: asyncio.base_events.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


class LatencyProxy:
    """The proxy on its own event loop in a daemon thread: `start()` returns the port."""

    def __init__(self, target_port: int, delay: float, tls: bool = False) -> None:
        self.target_port = target_port
        self.delay = delay
        self.tls = tls
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def start(self) -> int:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            start_server(self.target_port, self.delay, self.tls), self._loop
        )
        self._server = future.result(10)
        return _port_of(self._server)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _serve(target_port: int, delay: float, tls: bool) -> None:
    server = await start_server(target_port, delay, tls)
    print(_port_of(server), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, required=True, help="one-way delay")
    parser.add_argument("--tls", action="store_true", help="a second handshake round trip")
    options = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(options.target_port, options.delay_ms / 1000, options.tls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
