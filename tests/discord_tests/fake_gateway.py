"""Just enough of Discord's REST API and gateway for `DiscordAdapter.start` to log in,
sync its commands and become ready, with discord.py's own login, gateway handshake
(HELLO, IDENTIFY, READY) and ready logic in the path. No socket is opened.

SimCord covers everything after the start; this covers the start itself, which SimCord
performs on its own terms.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
import discord
from discord.http import Route

APP_ID = 900000000000000001
BOT_USER = {"id": str(APP_ID), "username": "pausecheck", "discriminator": "0", "avatar": None,
            "bot": True}  # fmt: skip


def refusal(status: int, code: int, message: str) -> discord.HTTPException:
    response = SimpleNamespace(status=status, reason=message)
    error = {"code": code, "message": message}
    if status == 403:
        return discord.Forbidden(response, error)
    return discord.HTTPException(response, error)


@dataclass
class Identifies:
    """The IDENTIFYs Discord saw from one bot, whichever worker sent them: with
    `every` set, one sooner than that after the last accepted is refused (an invalid
    session, as Discord answers one over its limit of one per 5 s)."""

    every: float | None = None
    # (monotonic time, [shard id, shard count] or None), in order.
    accepted: list[tuple[float, list[int] | None]] = field(default_factory=list)
    refused: list[tuple[float, list[int] | None]] = field(default_factory=list)

    def admit(self, shard: list[int] | None) -> bool:
        now = time.monotonic()
        if self.every is not None and self.accepted and now - self.accepted[-1][0] < self.every:
            self.refused.append((now, shard))
            return False
        self.accepted.append((now, shard))
        return True


@dataclass
class Script:
    """How the fake Discord behaves this time."""

    token_ok: bool = True
    sync_refused: bool = False
    fetch_refused: bool = False
    # The commands Discord has for the application (a PUT replaces them), per scope:
    # "global" or the guild id.
    registered: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    hello: bool = True
    close_on_identify: int | None = None  # a gateway close code, such as 4014
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    sent_to_gateway: list[dict[str, Any]] = field(default_factory=list)
    # Messages posted through REST: (channel id, the request's arguments).
    posted: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    # Every gateway connection opened, in order (each shard's client opens its own).
    sockets: list[FakeSocket] = field(default_factory=list)
    # Shared by the scripts of workers that are one bot.
    identifies: Identifies = field(default_factory=Identifies)


class FakeSocket:
    """The client side of a gateway websocket, as discord.py uses it."""

    def __init__(self, script: Script) -> None:
        self._script = script
        self._inbox: asyncio.Queue[aiohttp.WSMessage] = asyncio.Queue()
        self.closed = False
        self.close_code: int | None = None
        # [shard id, shard count] as identified; None until then, or when unsharded.
        self.shard: list[int] | None = None
        self._sequence = 1
        if script.hello:
            self._push({"op": 10, "d": {"heartbeat_interval": 45000}})

    def direct_message(self, user_id: int, text: str, message_id: int) -> None:
        """Someone writes to the bot in their DMs: MESSAGE_CREATE on this connection."""
        self._sequence += 1
        data: dict[str, Any] = {
                "id": str(message_id), "channel_id": str(user_id + 1), "author": _user(user_id),
                "content": text, "timestamp": "2026-01-05T12:00:00+00:00",
                "edited_timestamp": None, "tts": False, "mention_everyone": False,
                "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
                "pinned": False, "type": 0}  # fmt: skip
        self._push({"op": 0, "t": "MESSAGE_CREATE", "s": self._sequence, "d": data})

    def _push(self, payload: dict[str, Any]) -> None:
        self._inbox.put_nowait(aiohttp.WSMessage(aiohttp.WSMsgType.TEXT, json.dumps(payload), None))

    # discord.py passes `timeout`; the fake never waits for the network, so ignores it.
    async def receive(self, timeout: float | None = None) -> aiohttp.WSMessage:  # noqa: ASYNC109
        return await self._inbox.get()

    async def send_str(self, data: str) -> None:
        payload = json.loads(data)
        self._script.sent_to_gateway.append(payload)
        if payload["op"] == 1:  # heartbeat
            self._push({"op": 11})
        elif payload["op"] == 2:  # identify
            if self._script.close_on_identify is not None:
                self.close_code = self._script.close_on_identify
                self._inbox.put_nowait(aiohttp.WSMessage(aiohttp.WSMsgType.CLOSE, None, None))
                return
            if not self._script.identifies.admit(payload["d"].get("shard")):
                self._push({"op": 9, "d": False})
                return
            self.shard = payload["d"].get("shard")
            ready = {"v": 10, "user": BOT_USER, "guilds": [], "session_id": "s1",
                     "resume_gateway_url": "wss://gateway.invalid", "private_channels": [],
                     "application": {"id": str(APP_ID), "flags": 0}}  # fmt: skip
            self._push({"op": 0, "t": "READY", "s": 1, "d": ready})

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        if not self.closed:
            self.closed = True
            self.close_code = self.close_code or code
            self._inbox.put_nowait(aiohttp.WSMessage(aiohttp.WSMsgType.CLOSED, None, None))
        return True


class FakeDiscord:
    """Answers in place of the network, for discord.py's own HTTP client."""

    def __init__(self, script: Script) -> None:
        self.script = script

    async def request(self, route: Route, **kwargs: Any) -> Any:
        self.script.requests.append((route.method, route.path, kwargs.get("json")))
        if (route.method, route.path) == ("GET", "/users/@me"):
            if not self.script.token_ok:
                raise refusal(401, 0, "401: Unauthorized")
            return BOT_USER
        if (route.method, route.path) == ("GET", "/oauth2/applications/@me"):
            return {"id": str(APP_ID), "name": "Pausecheck", "description": "", "icon": None,
                    "bot_public": False, "bot_require_code_grant": False, "owner": BOT_USER,
                    "verify_key": "0", "flags": 0}  # fmt: skip
        if route.path.endswith("/commands"):
            scope = str(route.guild_id) if "guild_id" in route.path else "global"
            if route.method == "GET":
                if self.script.fetch_refused:
                    raise refusal(403, 50001, "Missing Access")
                return self.script.registered.get(scope, [])
            if route.method == "PUT":
                if self.script.sync_refused:
                    raise refusal(403, 50001, "Missing Access")
                self.script.registered[scope] = [
                    _as_discord_keeps_it(c, APP_ID + n) for n, c in enumerate(kwargs["json"], 1)
                ]
                return self.script.registered[scope]
        if (route.method, route.path) == ("POST", "/users/@me/channels"):
            # Opening a DM: the channel's id is the person's, plus one.
            user = int(kwargs["json"]["recipient_id"])
            return {"id": str(user + 1), "type": 1, "recipients": [_user(user)]}
        if (route.method, route.path) == ("POST", "/channels/{channel_id}/messages"):
            channel = int(str(route.channel_id))
            self.script.posted.append((channel, kwargs))
            return _message(channel, len(self.script.posted), kwargs)
        raise AssertionError(f"unexpected request {route.method} {route.path}")

    async def ws_connect(self, url: str, *, compress: int = 0) -> Any:
        socket = FakeSocket(self.script)
        self.script.sockets.append(socket)
        return socket


def _user(user_id: int) -> dict[str, Any]:
    return {"id": str(user_id), "username": f"user{user_id}", "discriminator": "0",
            "avatar": None}  # fmt: skip


def _message(channel_id: int, number: int, request: dict[str, Any]) -> dict[str, Any]:
    sent = request.get("json") or {}
    return {"id": str(800000000000000000 + number), "channel_id": str(channel_id),
            "author": BOT_USER, "content": sent.get("content", ""),
            "timestamp": "2026-01-05T12:00:00+00:00", "edited_timestamp": None,
            "tts": False, "mention_everyone": False, "mentions": [], "mention_roles": [],
            "attachments": [], "embeds": [], "pinned": False, "type": 0}  # fmt: skip


def _as_discord_keeps_it(command: dict[str, Any], command_id: int) -> dict[str, Any]:
    """A command as Discord answers for it: with ids and a version, defaults filled in
    (contexts, integration types), and an option's `required` left out when false."""
    options = [
        {k: v for k, v in o.items() if not (k == "required" and v is False)}
        for o in command.get("options", [])
    ]
    return {
        **command,
        "id": str(command_id),
        "application_id": str(APP_ID),
        "version": "1",
        "options": options,
        "contexts": command.get("contexts") or [0, 1, 2],
        "integration_types": command.get("integration_types") or [0],
    }


def install(client: discord.Client, script: Script) -> None:
    """Route the client's REST requests and its gateway connection to `script`.

    Only the two methods that would touch the network are replaced, on the client's
    one `HTTPClient` (which its state and command tree share); login, rate-limit
    bookkeeping and the gateway protocol stay discord.py's own.
    """
    fake = FakeDiscord(script)
    http: Any = client.http
    http.request = fake.request
    http.ws_connect = fake.ws_connect
