"""PTB's HTTPX request with a few connections and the calls beyond them waiting in line.

python-telegram-bot opens up to 256 connections for a bot's calls. httpcore's pool
then pays for that on every request: whenever one starts or ends it scans all of its
connections, counting idle ones inside the loop (quadratic in the pool's size), which
was 16% of the bot's CPU with 100 people tapping at once. A small pool alone is worse:
httpcore hands a freed connection to every request queued for one, and all but one
wake, fail and queue again. So the line is kept here instead, in an asyncio semaphore
(first come, first served; a release wakes one waiter), and httpcore never holds more
requests than it has connections.

And whether an idle connection was closed by the server is asked of its socket found
once (`_KeptSocketBackend`). httpcore asks it of every idle connection each time a
request starts or ends, through anyio's attribute lookup, which builds every attribute
of the socket (a getpeername call among them) to read one: with 16 connections that
was about 6% of the bot's CPU per action when 20 people tapped as fast as they were
answered (bench/telegram_throughput.py, table (a)). The answer is the same (a poll of
the same socket).

A call waits for a slot without a deadline: a slot is held only for one HTTP exchange,
which PTB's read, write and connect timeouts bound (flood-control waits happen before
it, in the rate limiter), so the line always moves.

A wave message (a capped send, bot/outbox.py) gets its moment of the wave's pace
before it reaches this line. Behind slow calls holding every slot, its moment would
pass in line, and the wave messages queued meanwhile would all go as soon as slots
freed: many at once at Telegram, over the cap. So a wave request that waited in line
longer than `LATE` gives its slot to the next in line, takes a new moment from the
outbox (`WaveTurn.paced`, before new wave messages), and queues again. It never holds
a slot while it waits for a moment, so replies behind it are not slowed.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx
from telegram.request import HTTPXRequest, RequestData

from bot.outbox import WaveTurn, wave_turn

# Enough for a busy bot's calls in flight on a local or a distant Bot API; see the
# module docstring for why more costs CPU.
CONNECTIONS = 16
# Seconds a wave request may wait for a slot and still use the moment it was given.
# Arrivals shifted by up to this much stay inside the outbox's margins (its window
# is measured 5% long, the line shared by workers 10%: 50 and 100 ms at 30 a second).
LATE = 0.02


class BoundedRequest(HTTPXRequest):
    def __init__(
        self,
        connections: int = CONNECTIONS,
        *,
        now: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        if connections < 1:
            raise ValueError("connections must be at least 1")
        super().__init__(connection_pool_size=connections, **kwargs)
        self._slots = asyncio.Semaphore(connections)
        self._now = now

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[int, bytes]:
        await self._take_slot(wave_turn())
        try:
            return await super().do_request(url, method, request_data, *args, **kwargs)
        finally:
            self._slots.release()

    async def _take_slot(self, turn: WaveTurn | None) -> None:
        """A slot; for a wave request (`turn`), one taken soon enough after its moment."""
        while True:
            if turn is None or not self._slots.locked():
                await self._slots.acquire()
                return
            began = self._now()
            await self._slots.acquire()
            if self._now() - began <= LATE:
                return
            # Its moment passed in line: the slot to the next, and a new moment.
            self._slots.release()
            await turn.paced(held=True)

    def _build_client(self) -> httpx.AsyncClient:
        client = super()._build_client()
        # httpx's transport and httpcore's pool are not public; both versions are
        # pinned in constraints.txt, and tests/telegram/test_bounded_request.py fails
        # if the backend is no longer installed. Without it calls still work.
        pool = getattr(getattr(client, "_transport", None), "_pool", None)
        if isinstance(pool, httpcore.AsyncConnectionPool) and not isinstance(
            pool._network_backend, _KeptSocketBackend
        ):
            pool._network_backend = _KeptSocketBackend(pool._network_backend)
        return client


class _KeptSocketBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, with streams that keep their socket at hand."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        self._backend = backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _KeptSocketStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_unix_socket(path, timeout, socket_options)
        return _KeptSocketStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _KeptSocketStream(httpcore.AsyncNetworkStream):
    """A stream that answers "is_readable" from the socket it found once."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._socket: socket.socket | None = stream.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._stream.start_tls(ssl_context, server_hostname, timeout)
        return _KeptSocketStream(stream)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._socket is not None:
            return _readable(self._socket)
        return self._stream.get_extra_info(info)


def _readable(sock: socket.socket) -> bool:
    """Whether a read would not wait (data, or the end a closed connection reads):
    httpcore's own test, on a socket already at hand. A socket with no descriptor
    left counts as readable, as there."""
    fd = sock.fileno()
    if fd < 0:
        return True
    poll = getattr(select, "poll", None)
    if poll is None:
        readable, _, _ = select.select([fd], [], [], 0)
        return bool(readable)
    poller = poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))
