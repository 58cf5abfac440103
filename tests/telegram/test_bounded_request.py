"""The bot's Bot API calls go through a few connections, the rest waiting in line
(`bot.telegram.bounded_request`): httpcore never holds more requests than that."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from telegram.request import HTTPXRequest

from bot.outbox import _WAVE_TURN, Outbox, WaveTurn
from bot.telegram.bounded_request import LATE, BoundedRequest, _KeptSocketBackend
from tests.telegram.conftest import Harness


async def test_calls_beyond_the_connections_wait_and_all_complete(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inside: list[str] = []
    entered: list[str] = []
    most = 0
    release = asyncio.Event()

    async def exchange(self: HTTPXRequest, url: str, *args: Any, **kwargs: Any) -> Any:
        nonlocal most
        inside.append(url)
        entered.append(url)
        most = max(most, len(inside))
        await release.wait()
        inside.remove(url)
        return 200, url.encode()

    monkeypatch.setattr(HTTPXRequest, "do_request", exchange)
    request = BoundedRequest(2)
    calls = [
        asyncio.create_task(request.do_request(f"http://127.0.0.1:9/bot/m{n}", "POST"))
        for n in range(10)
    ]
    for _ in range(20):  # let every call reach the line
        await asyncio.sleep(0)
    assert len(inside) == 2
    release.set()
    answers = await asyncio.gather(*calls)
    assert most == 2
    assert [status for status, _ in answers] == [200] * 10
    # First come, first served.
    assert entered == [f"http://127.0.0.1:9/bot/m{n}" for n in range(10)]


def test_at_least_one_connection() -> None:
    with pytest.raises(ValueError):
        BoundedRequest(0)


async def test_the_bot_calls_through_the_bounded_request(tg: Harness) -> None:
    application = tg.adapter._bot_app()
    assert isinstance(application.bot.request, BoundedRequest)


async def test_a_connection_the_server_closed_while_idle_is_not_used_again() -> None:
    """httpcore drops an idle connection whose socket reads the server's close; the
    bot's streams answer that from their socket found once (`_KeptSocketStream`),
    and must answer it as truly: else the next call goes out on the dead connection
    and fails."""
    served: list[int] = []

    async def answer_once_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        await reader.readexactly(length)
        served.append(len(served))
        body = b'{"ok":true,"result":true}'
        # Keep-alive as far as the client knows; then the server hangs up anyway.
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer_once_then_close, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    request = BoundedRequest(2)
    await request.initialize()
    try:
        for n in range(3):
            await asyncio.sleep(0.05)  # the close has reached the client's socket
            status, _ = await request.do_request(f"http://127.0.0.1:{port}/bot/m{n}", "POST")
            assert status == 200
    finally:
        await request.shutdown()
        server.close()
        await server.wait_closed()
    assert served == [0, 1, 2]


async def test_the_bots_connections_answer_readability_from_their_socket(tg: Harness) -> None:
    request = tg.adapter._bot_app().bot.request
    pool = request._client._transport._pool
    assert isinstance(pool._network_backend, _KeptSocketBackend)


class Turn(WaveTurn):
    """A wave send's turn whose new moments come when the test gives them."""

    def __init__(self) -> None:
        super().__init__(cast(Outbox, None))
        self.asked = 0
        self.moment = asyncio.Event()

    async def paced(self, *, held: bool = False) -> None:
        self.asked += 1
        await self.moment.wait()


class Line:
    """A BoundedRequest of one slot on a manual clock, whose HTTP exchanges record
    who entered and wait, each, until the test lets them end."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 0.0
        self.entered: list[str] = []
        self.ends: dict[str, asyncio.Event] = {}
        self.request = BoundedRequest(1, now=lambda: self.now)

        async def exchange(request: HTTPXRequest, url: str, *args: Any, **kwargs: Any) -> Any:
            self.entered.append(url)
            await self.ends.setdefault(url, asyncio.Event()).wait()
            return 200, b""

        monkeypatch.setattr(HTTPXRequest, "do_request", exchange)

    def call(self, url: str, turn: Turn | None = None) -> asyncio.Task[tuple[int, bytes]]:
        async def made() -> tuple[int, bytes]:
            if turn is not None:
                _WAVE_TURN.set(turn)  # as the outbox sets it around a wave send
            return await self.request.do_request(url, "POST")

        return asyncio.create_task(made())

    def end(self, url: str) -> None:
        self.ends.setdefault(url, asyncio.Event()).set()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_wave_request_late_for_its_slot_takes_a_new_moment_holding_no_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Its moment passed while a slow call held the slot; sent at once, it would reach
    # Telegram with every wave request queued behind the slow calls.
    line = Line(monkeypatch)
    turn = Turn()
    slow = line.call("slow")
    await settle()
    wave = line.call("wave", turn)
    await settle()
    reply = line.call("reply")
    await settle()
    line.now += 1.0
    line.end("slow")
    await settle()
    assert turn.asked == 1
    # While the wave request waits for its new moment, the reply behind it has the slot.
    assert line.entered == ["slow", "reply"]
    line.end("reply")
    turn.moment.set()
    line.end("wave")
    await asyncio.wait_for(asyncio.gather(slow, wave, reply), 5)
    assert line.entered == ["slow", "reply", "wave"]
    assert turn.asked == 1


async def test_a_wave_request_with_a_slot_soon_enough_keeps_its_moment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    line = Line(monkeypatch)
    at_once, soon = Turn(), Turn()
    line.end("at once")
    await line.call("at once", at_once)  # a free slot
    first = line.call("first")
    await settle()
    wave = line.call("soon", soon)
    await settle()
    line.now += LATE / 2
    line.end("first")
    line.end("soon")
    await asyncio.wait_for(asyncio.gather(first, wave), 5)
    assert line.entered == ["at once", "first", "soon"]
    assert at_once.asked == soon.asked == 0
