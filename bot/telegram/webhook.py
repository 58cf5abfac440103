"""A small webhook server of our own, feeding python-telegram-bot's update queue.

PTB's built-in webhook server (tornado) reads a request's whole body, up to 100 MB,
before it looks at the secret token, so anyone who can reach the port can make the
guide hold hundreds of megabytes. This one, as PTB documents for custom servers
(`examples/customwebhookbot`), turns each accepted request into an `Update` and puts
it on `Application.update_queue`; the application then processes it like a polled
one. In order, for every request:

1. the method and path must match (else 405 / 404);
2. the `X-Telegram-Bot-Api-Secret-Token` header must equal the secret (compared in
   constant time), or the answer is 403, the connection is closed and **the body is
   never read** (aiohttp stops reading the socket once its small buffer is full);
3. the declared `Content-Length` must be at most `max_bytes` (1 MB by default;
   Telegram's updates are a few kilobytes), or 413 without reading it; a body without
   a length is read only up to `max_bytes` and refused past that;
4. the body must be a JSON object that PTB can parse as an `Update` (else 400);
5. it is handed to `accept` (the guide's: `bot.telegram.inbox`, which stores it in the
   database), and only once that returns is Telegram answered 200; if it fails, the
   answer is 500 and Telegram sends the update again. Without `accept` the update goes
   on `Application.update_queue`, in memory.

Nothing of the body is logged: a refused request is logged by its status only.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from telegram import Update

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1024 * 1024
# A client that sends its body slower than this is dropped (no slow-loris holds).
READ_TIMEOUT = 10.0
_CHUNK = 64 * 1024

# Given the body as parsed JSON and the `Update` made of it.
Accept = Callable[[dict[str, Any], Update], Awaitable[None]]


class WebhookServer:
    """Serves `path` on `listen:port`; call `start` before `setWebhook`, `stop` after."""

    def __init__(
        self,
        application: Any,
        *,
        listen: str,
        port: int,
        path: str,
        secret: str,
        max_bytes: int = MAX_BODY,
        read_timeout: float = READ_TIMEOUT,
        routes: Sequence[web.RouteDef] = (),
        accept: Accept | None = None,
    ) -> None:
        if not secret:
            raise ValueError("a webhook needs a secret token")
        self._application = application
        self._listen = listen
        self._port = port
        self._path = "/" + path.lstrip("/")
        self._secret = secret.encode("utf-8")
        self._max_bytes = max_bytes
        self._read_timeout = read_timeout
        # Served before the webhook's own checks (bot/ops_http.py: /healthz, /metrics).
        self._routes = list(routes)
        self._accept = accept
        self._runner: web.AppRunner | None = None
        self.port = port
        self.accepted = 0
        self.refused = 0

    async def start(self) -> None:
        # client_max_size is a second net under the explicit checks below.
        app = web.Application(client_max_size=self._max_bytes)
        app.add_routes(self._routes)
        app.router.add_route("*", "/{tail:.*}", self._serve)
        # lingering_time=0: after a refusal aiohttp would otherwise go on reading (and
        # discarding) what the client still sends, for up to 10 s.
        runner = web.AppRunner(app, access_log=None, handle_signals=False, lingering_time=0)
        await runner.setup()
        site = web.TCPSite(runner, self._listen, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        addresses = runner.addresses
        if addresses:
            self.port = addresses[0][1]

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        if request.path != self._path:
            return self._refuse(404)
        if request.method != "POST":
            return self._refuse(405)
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8")
        if not hmac.compare_digest(given, self._secret):
            return self._refuse(403)
        length = request.content_length
        if length is not None and length > self._max_bytes:
            return self._refuse(413)
        try:
            async with asyncio.timeout(self._read_timeout):
                body = await self._read_body(request)
        except TimeoutError:
            return self._refuse(408)
        if body is None:
            return self._refuse(413)
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            update = Update.de_json(data, self._application.bot)
        except Exception as exc:
            # The body may hold a person's words: only the kind of error is logged.
            log.warning("webhook body refused error=%s", type(exc).__name__)
            return self._refuse(400)
        if update is None:
            return self._refuse(400)
        if self._accept is None:
            await self._application.update_queue.put(update)
        else:
            try:
                await self._accept(data, update)
            except Exception as exc:
                # Not stored: Telegram keeps the update and sends it again.
                log.warning("webhook update not stored error=%s", type(exc).__name__)
                return self._refuse(500)
        self.accepted += 1
        return web.Response(status=200)

    async def _read_body(self, request: web.Request) -> bytes | None:
        """The body, or None once it passes `max_bytes` (the rest is never read)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await request.content.read(_CHUNK)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self._max_bytes:
                return None
            chunks.append(chunk)

    def _refuse(self, status: int) -> web.Response:
        self.refused += 1
        log.info("webhook request refused status=%d", status)
        response = web.Response(status=status)
        # Close after answering instead of draining what the client still sends.
        response.force_close()
        return response
