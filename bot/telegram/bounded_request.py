"""PTB's HTTPX request with a few connections and the calls beyond them waiting in line.

python-telegram-bot opens up to 256 connections for a bot's calls. httpcore's pool
then pays for that on every request: whenever one starts or ends it scans all of its
connections, counting idle ones inside the loop (quadratic in the pool's size), which
was 16% of the bot's CPU with 100 people tapping at once. A small pool alone is worse:
httpcore hands a freed connection to every request queued for one, and all but one
wake, fail and queue again. So the line is kept here instead, in an asyncio semaphore
(first come, first served; a release wakes one waiter), and httpcore never holds more
requests than it has connections.

A call waits for a slot without a deadline: a slot is held only for one HTTP exchange,
which PTB's read, write and connect timeouts bound (flood-control waits happen before
it, in the rate limiter), so the line always moves.
"""

from __future__ import annotations

import asyncio
from typing import Any

from telegram.request import HTTPXRequest, RequestData

# Enough for a busy bot's calls in flight on a local or a distant Bot API; see the
# module docstring for why more costs CPU.
CONNECTIONS = 16


class BoundedRequest(HTTPXRequest):
    def __init__(self, connections: int = CONNECTIONS, **kwargs: Any) -> None:
        if connections < 1:
            raise ValueError("connections must be at least 1")
        super().__init__(connection_pool_size=connections, **kwargs)
        self._slots = asyncio.Semaphore(connections)

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[int, bytes]:
        async with self._slots:
            return await super().do_request(url, method, request_data, *args, **kwargs)
