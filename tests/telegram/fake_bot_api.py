"""A fake Telegram Bot API server on 127.0.0.1, for python-telegram-bot to talk to.

PTB is pointed at it with `base_url=http://127.0.0.1:PORT/bot`, so the whole library
runs, HTTP included. The fake answers the methods the adapter uses, keeps each chat's
messages (with edits applied, as the person would see them), records every call, and
hands out queued updates through long polling (`getUpdates` honours `offset` and
holds the request until an update arrives or `timeout` passes), or POSTs them to
webhook URLs (`deliver_by_webhook`), round robin, again until one takes each.

`getChatMember` answers from `owners`, `admins` and `outsiders` (per group; everyone
else is a member). Faults can be injected: an HTTP status (429 with `retry_after`, 5xx), a slow
answer, a dropped connection, and 403 "bot was blocked by the user" for chosen chats.
`chaos` (off by default) adds random weather for a soak (`soak/`): each call but
housekeeping may meet a 429, a 5xx, a slow answer, a connection dropped before the
call took effect, or one dropped after (the answer lost, as on a real network).

It also serves the benchmark, in a process of its own, so it depends on nothing in
the project.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import aiohttp
from aiohttp import web

T = TypeVar("T")

DEFAULT_TOKEN = "123456:TEST-token-for-the-fake"
BOT_ID = 777000111
BOT_USERNAME = "pausecheck_test_bot"

# Form fields PTB sends JSON-encoded, and those that are integers.
_JSON_FIELDS = frozenset(
    {"reply_markup", "commands", "allowed_updates", "scope", "entities", "reply_parameters"}
)
_INT_FIELDS = frozenset({"chat_id", "message_id", "offset", "limit", "timeout", "user_id"})
# An administrator's rights, all required in getChatMember's answer (all False here).
_RIGHTS = (
    "can_be_edited",
    "is_anonymous",
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
)
# Methods a catch-all fault leaves alone: polling keeps working through a send storm.
_HOUSEKEEPING = frozenset({"getUpdates", "getMe", "deleteWebhook", "setWebhook"})
# The client's port of the call being served (its connection's task).
_PEER: ContextVar[int | None] = ContextVar("peer", default=None)


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    params: dict[str, Any]
    status: int
    at: float
    # The client's TCP port: with several client processes, which one called.
    peer: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return value if isinstance(value, int) else None


@dataclass(slots=True)
class Fault:
    kind: Literal["status", "delay", "drop", "hold", "lose"]
    times: int
    methods: frozenset[str] | None = None  # None: every method but housekeeping
    chat_id: int | None = None
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0
    # For "hold": whether the call takes effect before it is held.
    accept: bool = False

    def matches(self, method: str, chat_id: int | None) -> bool:
        if self.times <= 0:
            return False
        if self.methods is None:
            if method in _HOUSEKEEPING:
                return False
        elif method not in self.methods:
            return False
        return self.chat_id is None or self.chat_id == chat_id


@dataclass(slots=True)
class Chaos:
    """Random faults, drawn once per call the guide makes (housekeeping excepted),
    with these probabilities: a soak's weather. What was injected is counted in
    `injected`; the calls that took effect but whose answer was lost are in `lost`
    (the guide cannot know they arrived, so a retry may show the message twice)."""

    rate_limited: float = 0.0
    retry_after: float = 1.0
    server_error: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 0.5
    dropped: float = 0.0
    lost_answer: float = 0.0
    seed: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    lost: list[Call] = field(default_factory=list)
    _rng: random.Random | None = None

    def draw(self) -> str | None:
        """The fault for one call, or None."""
        if self._rng is None:
            self._rng = random.Random(self.seed)
        roll = self._rng.random()
        for kind, chance in (
            ("429", self.rate_limited),
            ("5xx", self.server_error),
            ("slow", self.slow),
            ("dropped", self.dropped),
            ("lost answer", self.lost_answer),
        ):
            if roll < chance:
                self.injected[kind] += 1
                return kind
            roll -= chance
        return None


@dataclass(slots=True)
class FakeBotAPI:
    token: str = DEFAULT_TOKEN
    bot_id: int = BOT_ID
    username: str = BOT_USERNAME
    calls: list[Call] = field(default_factory=list)
    messages: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)
    blocked: set[int] = field(default_factory=set)
    faults: list[Fault] = field(default_factory=list)
    webhook_url: str = ""
    commands: list[dict[str, Any]] = field(default_factory=list)
    # getChatMember: who owns and who administers each group (chat id -> user ids);
    # everyone else is a plain member.
    owners: dict[int, int] = field(default_factory=dict)
    admins: dict[int, set[int]] = field(default_factory=dict)
    # Who is not in each group (left, or never joined): getChatMember says "left".
    outsiders: dict[int, set[int]] = field(default_factory=dict)
    # Called with each successful call (the benchmark's simulated people react to it).
    on_call: Callable[[Call, Any], None] | None = None
    # Message dates, in Unix seconds: tests point this at their manual clock.
    now: Callable[[], float] = time.time
    # Random faults on every call but housekeeping (see `Chaos`); None: none.
    chaos: Chaos | None = None
    # How many times each update was handed out by getUpdates (more than once: it
    # was fetched again because the fetching process never confirmed it).
    handed_out: Counter[int] = field(default_factory=Counter)
    _updates: list[dict[str, Any]] = field(default_factory=list)
    _update_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _message_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _query_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _chat_types: dict[int, str] = field(default_factory=dict)
    _changed: asyncio.Condition | None = None
    _runner: web.AppRunner | None = None
    _closing: bool = False
    _released: asyncio.Event | None = None
    # Webhook delivery (see `deliver_by_webhook`): where pushed updates are POSTed.
    webhook_targets: list[str] = field(default_factory=list)
    webhook_accepted: int = 0
    _webhook_secret: str = ""
    _webhook_queue: asyncio.Queue[dict[str, Any]] | None = None
    _webhook_task: asyncio.Task[None] | None = None
    # Calls being held open by a "hold" fault (see `hold`), and each call held.
    holding: int = 0
    held: list[Call] = field(default_factory=list)
    # Calls that took effect after their client had stopped waiting (its timeout ran
    # out while the handler was slow): as on Telegram, the message is in the chat and
    # the answer is lost.
    unanswered: list[Call] = field(default_factory=list)
    # Pushed updates no webhook target has taken yet (queued or being posted).
    webhook_waiting: int = 0
    port: int = 0

    # ------------------------------------------------------------------ server

    async def start(self, port: int = 0) -> None:
        self._changed = asyncio.Condition()
        self._released = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._serve)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        # Held long polls return at once, so the server need not wait out their timeout.
        self._closing = True
        self.release()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    # ------------------------------------------------------------------ people and updates

    def user(self, user_id: int) -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": f"Person{user_id}"}

    def bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Pausecheck",
            "username": self.username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def chat(self, chat_id: int) -> dict[str, Any]:
        kind = self._chat_types.get(chat_id, "private" if chat_id > 0 else "group")
        if kind == "private":
            return {"id": chat_id, "type": "private", "first_name": f"Person{chat_id}"}
        return {"id": chat_id, "type": kind, "title": "A group"}

    def push_update(self, body: dict[str, Any]) -> int:
        update_id = next(self._update_ids)
        update = {"update_id": update_id, **body}
        if self.webhook_targets:
            self._deliver_soon(update)
        else:
            self._updates.append(update)
        self._notify()
        return update_id

    # ------------------------------------------------------------------ webhook delivery

    def deliver_by_webhook(self, targets: list[str], secret: str) -> None:
        """From now on, POST each pushed update to `targets` (the workers' webhook
        URLs) instead of keeping it for getUpdates, as Telegram does in webhook mode
        behind a load balancer: each update to the next target in turn, and to the next
        again (after a short pause) until one answers 200. Updates are sent one at a
        time in push order, as Telegram sends a chat's updates; `webhook_accepted`
        counts the 200s."""
        self.webhook_targets = list(targets)
        self._webhook_secret = secret

    def _deliver_soon(self, update: dict[str, Any]) -> None:
        if self._webhook_queue is None:
            self._webhook_queue = asyncio.Queue()
            self._webhook_task = asyncio.get_running_loop().create_task(self._webhook_loop())
        self.webhook_waiting += 1
        self._webhook_queue.put_nowait(update)

    async def webhook_idle(self, within: float = 30.0) -> None:
        """Wait until every pushed update was accepted by a target."""
        if self._webhook_queue is not None:
            async with asyncio.timeout(within):
                await self._webhook_queue.join()

    async def _webhook_loop(self) -> None:
        assert self._webhook_queue is not None
        turn = itertools.count()
        async with aiohttp.ClientSession() as http:
            while True:
                update = await self._webhook_queue.get()
                try:
                    await self._post_until_taken(http, update, next(turn))
                finally:
                    self.webhook_waiting -= 1
                    self._webhook_queue.task_done()

    async def _post_until_taken(
        self, http: aiohttp.ClientSession, update: dict[str, Any], turn: int
    ) -> None:
        headers = {"X-Telegram-Bot-Api-Secret-Token": self._webhook_secret}
        for attempt in itertools.count():
            target = self.webhook_targets[(turn + attempt) % len(self.webhook_targets)]
            try:
                async with http.post(
                    target, json=update, headers=headers, timeout=aiohttp.ClientTimeout(total=10)
                ) as response:
                    if response.status == 200:
                        self.webhook_accepted += 1
                        self.handed_out[update["update_id"]] += 1
                        self._notify()
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if self._closing:
                return
            if attempt % len(self.webhook_targets) == len(self.webhook_targets) - 1:
                await asyncio.sleep(0.2)

    def message_update(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        chat_type: str | None = None,
        reply_to: int | None = None,
        date: int | None = None,
    ) -> dict[str, Any]:
        """The body of an update for a message someone typed (not yet queued)."""
        chat_id = user_id if chat_id is None else chat_id
        if chat_type is not None:
            self._chat_types[chat_id] = chat_type
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(self.now()) if date is None else date,
            "chat": self.chat(chat_id),
            "from": self.user(user_id),
            "text": text,
        }
        entities: list[dict[str, Any]] = []
        if text.startswith("/"):
            command = text.split()[0]
            entities.append({"type": "bot_command", "offset": 0, "length": len(command)})
        # As Telegram does: an @username in the text is a mention entity (the offsets
        # count UTF-16 code units; the tests mention the bot in ASCII).
        at = text.casefold().find(f"@{self.username}".casefold())
        if at >= 0 and not (entities and at < entities[0]["length"]):
            entities.append({"type": "mention", "offset": at, "length": len(self.username) + 1})
        if entities:
            message["entities"] = entities
        if reply_to is not None:
            message["reply_to_message"] = self.messages[chat_id][reply_to]
        return {"message": message}

    def push_message(self, user_id: int, text: str, **kwargs: Any) -> int:
        return self.push_update(self.message_update(user_id, text, **kwargs))

    def callback_update(
        self, user_id: int, message_id: int, data: str, *, chat_id: int | None = None
    ) -> dict[str, Any]:
        chat_id = user_id if chat_id is None else chat_id
        return {
            "callback_query": {
                "id": str(next(self._query_ids)),
                "from": self.user(user_id),
                "chat_instance": f"ci{chat_id}",
                "data": data,
                "message": dict(self.messages[chat_id][message_id]),
            }
        }

    def push_callback(self, user_id: int, message_id: int, data: str, **kwargs: Any) -> int:
        return self.push_update(self.callback_update(user_id, message_id, data, **kwargs))

    # ------------------------------------------------------------------ faults

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        methods: Iterable[str] | None = None,
        chat_id: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.faults.append(
            Fault("status", times, _methods(methods), chat_id, status, retry_after=retry_after)
        )

    def slow(self, seconds: float, *, times: int = 1, methods: Iterable[str] | None = None) -> None:
        self.faults.append(Fault("delay", times, _methods(methods), delay=seconds))

    def drop(
        self, *, times: int = 1, methods: Iterable[str] | None = None, chat_id: int | None = None
    ) -> None:
        self.faults.append(Fault("drop", times, _methods(methods), chat_id))

    def lose_answer(
        self, *, times: int = 1, methods: Iterable[str] | None = None, chat_id: int | None = None
    ) -> None:
        """The call takes effect, then its connection drops before the answer: the
        guide cannot know it arrived (a retry shows the message twice)."""
        self.faults.append(Fault("lose", times, _methods(methods), chat_id))

    def block(self, chat_id: int) -> None:
        self.blocked.add(chat_id)

    def hold(
        self, method: str, *, accept: bool, chat_id: int | None = None, times: int = 1
    ) -> None:
        """Hold matching calls open, never answering them, until `release()`: with
        `accept`, once the call took effect (the message is in the chat, as if only
        the answer were lost); without, before anything happened. For killing a
        client mid-call."""
        self.faults.append(Fault("hold", times, _methods([method]), chat_id, accept=accept))

    def release(self) -> None:
        """Answer the calls held now; a call held after this waits for the next
        release (each hold is a crash scene of its own)."""
        if self._released is not None:
            self._released.set()
            self._released = asyncio.Event()

    # ------------------------------------------------------------------ what happened

    def ok_calls(self, method: str | None = None, chat_id: int | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.ok
            and (method is None or c.method == method)
            and (chat_id is None or c.chat_id == chat_id)
        ]

    def chat_log(self, chat_id: int) -> list[dict[str, Any]]:
        """The chat's messages from the bot and people, oldest first, edits applied."""
        return list(self.messages.get(chat_id, {}).values())

    def unconfirmed(self) -> list[int]:
        """Ids of the updates Telegram still keeps: not yet confirmed by a getUpdates
        with a higher offset (nothing here once they are, as on Telegram)."""
        return [u["update_id"] for u in self._updates]

    def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        return [m for m in self.chat_log(chat_id) if m.get("from", {}).get("id") == self.bot_id]

    async def wait_for(self, check: Callable[[], T | None], within: float = 4.0) -> T:
        """Wait until `check()` returns something truthy (re-checked on every change)."""
        assert self._changed is not None
        found: list[T] = []

        def ready() -> bool:
            value = check()
            if value:
                found.append(value)
                return True
            return False

        async def wait() -> None:
            assert self._changed is not None
            async with self._changed:
                await self._changed.wait_for(ready)

        async with asyncio.timeout(within):
            await wait()
        return found[-1]

    def _notify(self) -> None:
        if self._changed is None:
            return

        async def notify() -> None:
            assert self._changed is not None
            async with self._changed:
                self._changed.notify_all()

        asyncio.get_running_loop().create_task(notify())

    # ------------------------------------------------------------------ serving

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        peername = request.transport.get_extra_info("peername") if request.transport else None
        peer = peername[1] if isinstance(peername, tuple) else None
        _PEER.set(peer)
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        params = await _params(request)
        chat_id = params.get("chat_id")
        chat = chat_id if isinstance(chat_id, int) else None
        fault = next((f for f in self.faults if f.matches(method, chat)), None)
        if fault is not None:
            fault.times -= 1
            if fault.kind == "delay":
                await asyncio.sleep(fault.delay)
            elif fault.kind == "hold":
                return await self._hold(method, params, fault.accept)
            elif fault.kind == "lose":
                await self._take_effect(method, params)
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError  # aiohttp gives up on this request quietly
            elif fault.kind == "drop":
                self._record(method, params, 0)
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError  # aiohttp gives up on this request quietly
            else:
                self._record(method, params, fault.status)
                return _error(fault.status, _phrase(fault.status), fault.retry_after)
        elif self.chaos is not None and method not in _HOUSEKEEPING:
            weather = await self._weather(request, method, params)
            if weather is not None:
                return weather
        if chat is not None and chat in self.blocked:
            self._record(method, params, 403)
            return _error(403, "Forbidden: bot was blocked by the user")
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            self._record(method, params, 404)
            return _error(404, "Not Found")
        try:
            result = await handler(params)
        except _ApiError as exc:
            self._record(method, params, exc.status)
            return _error(exc.status, exc.description)
        call = self._record(method, params, 200)
        if request.transport is None or request.transport.is_closing():
            self.unanswered.append(call)
        if self.on_call is not None:
            self.on_call(call, result)
        return web.json_response({"ok": True, "result": result})

    async def _weather(
        self, request: web.Request, method: str, params: dict[str, Any]
    ) -> web.StreamResponse | None:
        """A `Chaos` fault for this call: an answer to return, or None to serve it
        (after a delay, for a slow answer)."""
        assert self.chaos is not None
        kind = self.chaos.draw()
        if kind == "429":
            self._record(method, params, 429)
            return _error(429, _phrase(429), self.chaos.retry_after)
        if kind == "5xx":
            self._record(method, params, 502)
            return _error(502, "Bad Gateway")
        if kind == "slow":
            await asyncio.sleep(self.chaos.slow_seconds)
            return None
        if kind == "dropped":
            self._record(method, params, 0)
        elif kind == "lost answer":
            self.chaos.lost.extend(await self._take_effect(method, params))
        else:
            return None
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # aiohttp gives up on this request quietly

    async def _take_effect(self, method: str, params: dict[str, Any]) -> list[Call]:
        """Handle a call whose answer will be lost: the call recorded if it took effect."""
        handler = getattr(self, f"_api_{method}", None)
        try:
            if handler is not None:
                await handler(params)
        except _ApiError as exc:
            self._record(method, params, exc.status)
            return []
        return [self._record(method, params, 200)]

    async def _hold(self, method: str, params: dict[str, Any], accept: bool) -> web.Response:
        if accept:
            handler = getattr(self, f"_api_{method}")
            await handler(params)
            self.held.append(self._record(method, params, 200))
        else:
            # Never answered, never took effect.
            self.held.append(self._record(method, params, 0))
        self.holding += 1
        self._notify()
        released = self._released
        assert released is not None
        if not self._closing:
            await released.wait()
        return _error(503, "Service Unavailable")

    def _record(self, method: str, params: dict[str, Any], status: int) -> Call:
        call = Call(method, params, status, time.monotonic(), _PEER.get())
        self.calls.append(call)
        self._notify()
        return call

    def _new_message(self, chat_id: int, **content: Any) -> dict[str, Any]:
        message = {
            "message_id": next(self._message_ids),
            "date": int(self.now()),
            "chat": self.chat(chat_id),
            "from": self.bot_user(),
            **content,
        }
        self.messages.setdefault(chat_id, {})[message["message_id"]] = message
        return message

    def _stored(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get(params.get("chat_id", 0), {}).get(params.get("message_id", 0))
        if message is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        return message

    # Bot API methods: each takes the decoded params and returns the JSON result.

    async def _api_getMe(self, params: dict[str, Any]) -> Any:
        return self.bot_user()

    async def _api_deleteWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook_url = ""
        return True

    async def _api_setWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook_url = params.get("url", "")
        return True

    async def _api_setMyCommands(self, params: dict[str, Any]) -> Any:
        self.commands = list(params.get("commands", []))
        return True

    async def _api_getChatMember(self, params: dict[str, Any]) -> Any:
        chat_id, user_id = params.get("chat_id"), params.get("user_id")
        if not isinstance(chat_id, int) or not isinstance(user_id, int):
            raise _ApiError(400, "Bad Request: chat_id and user_id are required")
        if chat_id > 0:
            raise _ApiError(400, "Bad Request: chat member status can't be fetched here")
        user = self.user(user_id)
        if self.owners.get(chat_id) == user_id:
            return {"status": "creator", "user": user, "is_anonymous": False}
        if user_id in self.admins.get(chat_id, set()):
            return {"status": "administrator", "user": user, **dict.fromkeys(_RIGHTS, False)}
        if user_id in self.outsiders.get(chat_id, set()):
            return {"status": "left", "user": user}
        return {"status": "member", "user": user}

    async def _api_sendChatAction(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_getUpdates(self, params: dict[str, Any]) -> Any:
        offset = params.get("offset")
        if isinstance(offset, int):
            # Everything before the offset is confirmed: Telegram forgets it.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        limit = params.get("limit") or 100
        timeout = float(params.get("timeout") or 0)
        if not self._updates and timeout > 0:
            assert self._changed is not None
            with contextlib.suppress(TimeoutError):
                async with self._changed:
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: bool(self._updates) or self._closing),
                        timeout,
                    )
        handed = self._updates[:limit]
        self.handed_out.update(u["update_id"] for u in handed)
        return handed

    async def _api_sendMessage(self, params: dict[str, Any]) -> Any:
        text = params.get("text", "")
        if not text or len(text.encode("utf-16-le")) // 2 > 4096:
            raise _ApiError(400, "Bad Request: message text is empty or too long")
        content: dict[str, Any] = {"text": text}
        if params.get("reply_markup"):
            content["reply_markup"] = params["reply_markup"]
        return self._new_message(params["chat_id"], **content)

    async def _api_sendDocument(self, params: dict[str, Any]) -> Any:
        upload = params.get("document")
        if not isinstance(upload, dict):
            raise _ApiError(400, "Bad Request: there is no document in the request")
        document = {
            "file_id": f"file{len(self.calls)}",
            "file_unique_id": f"u{len(self.calls)}",
            "file_name": upload["filename"],
            "mime_type": upload["content_type"],
            "file_size": len(upload["data"]),
        }
        content: dict[str, Any] = {"document": document}
        if params.get("caption"):
            content["caption"] = params["caption"]
        return self._new_message(params["chat_id"], **content)

    async def _api_sendPhoto(self, params: dict[str, Any]) -> Any:
        upload = params.get("photo")
        if not isinstance(upload, dict):
            raise _ApiError(400, "Bad Request: there is no photo in the request")
        # Telegram answers with the sizes it keeps; the fake keeps the one it got.
        photo = {
            "file_id": f"photo{len(self.calls)}",
            "file_unique_id": f"p{len(self.calls)}",
            "width": 0,
            "height": 0,
            "file_size": len(upload["data"]),
        }
        content: dict[str, Any] = {"photo": [photo]}
        if params.get("caption"):
            content["caption"] = params["caption"]
        return self._new_message(params["chat_id"], **content)

    async def _api_editMessageText(self, params: dict[str, Any]) -> Any:
        message = self._stored(params)
        markup = params.get("reply_markup")
        if message.get("text") == params.get("text") and message.get("reply_markup") == markup:
            raise _ApiError(400, "Bad Request: message is not modified")
        message["text"] = params.get("text", "")
        # As on Telegram: an edit without reply_markup removes the inline keyboard.
        if markup:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        return message

    async def _api_editMessageReplyMarkup(self, params: dict[str, Any]) -> Any:
        message = self._stored(params)
        markup = params.get("reply_markup")
        if markup:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        return message


class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def _methods(methods: Iterable[str] | None) -> frozenset[str] | None:
    return None if methods is None else frozenset(methods)


def _phrase(status: int) -> str:
    if status == 429:
        return "Too Many Requests: retry later"
    if status == 403:
        return "Forbidden: bot was blocked by the user"
    return "Internal Server Error" if status >= 500 else "Bad Request"


def _error(status: int, description: str, retry_after: float | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return web.json_response(body, status=status)


async def _params(request: web.Request) -> dict[str, Any]:
    """The call's parameters, decoded as the Bot API would: form fields, JSON fields,
    and uploaded files as {filename, content_type, data}."""
    if request.content_type == "application/json":
        raw: dict[str, Any] = await request.json()
    elif request.method == "GET":
        raw = dict(request.query)
    else:
        raw = dict(await request.post())
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, web.FileField):
            params[key] = {
                "filename": value.filename,
                "content_type": value.content_type,
                "data": value.file.read(),
            }
        elif isinstance(value, str) and key in _JSON_FIELDS:
            params[key] = json.loads(value)
        elif isinstance(value, str) and key in _INT_FIELDS:
            try:
                params[key] = int(value)
            except ValueError:
                params[key] = value
        else:
            params[key] = value
    return params
