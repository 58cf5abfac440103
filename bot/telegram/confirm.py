"""Long polling confirms an update to Telegram only once the guide has handled it.

Telegram forgets an update as soon as getUpdates is called with a higher offset, and
PTB's Updater asks for the next batch the moment it has queued the last one. So a
process killed while an update of that batch was still being handled lost it: the
person's message or press got no answer, ever (the soak harness found it, about one
update in a hundred at a kill -9; docs/reliability.md).

`HandledUpdates` knows which fetched updates this process still has in hand.
`ConfirmingRequest`, the request object of getUpdates only, asks Telegram from the
oldest of them rather than past the newest (so Telegram keeps it until it is handled,
and hands it to the next process after a crash), and leaves out of each answer the
updates this process already has (so nothing is handled twice here; a redelivery to
the next process meets the engine's event claim).

Asking from the oldest update in hand, Telegram answers at once with the updates in
hand (no long poll), so while some are in hand an answer with nothing new waits up to
`RECHECK_SECONDS` for one of them to finish before asking again: a new update waits
that long at most. An answer full of updates in hand (a backlog of 100: one person's
flood being worked through, or an outage's worth after a restart) could hide newer
ones, another person's /sos among them: the next ask goes past the newest at once,
as PTB would. The updates still in hand are stored first (`Spill`: the inbox's
rows, `storage.inbox_rows.InboxRows.put_in_hand`), so confirming them loses nothing:
a process killed while it works through them leaves them to the next one, which
handles what is stored before it polls (`bot.telegram.adapter`). Stored ones are
deleted once handled (`Forget`, on the next ask). So nothing fetched is confirmed
before it is either handled or stored; in ordinary traffic nothing is stored.

So each answer repeats every update still in hand: with people tapping as fast as they
are answered, about 36 updates (31 KB) per answer for 2 new ones (bench/
telegram_throughput.py, table (a)). Decoding them all, only to drop them, and encoding
the rest again took about a tenth of the bot's CPU per action. `split_answer` finds
where each update begins without decoding it (Telegram writes `update_id` first, in
ascending order) and decodes only the new ones; an answer laid out any other way is
decoded whole, as before.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from telegram import Update
from telegram.error import NetworkError
from telegram.request import HTTPXRequest, RequestData
from telegram.request._requestparameter import RequestParameter

log = logging.getLogger(__name__)

# How long to wait for an update in hand before asking Telegram again anyway.
RECHECK_SECONDS = 0.1
# getUpdates answers at most this many updates (Telegram's own cap and default).
LIMIT = 100

# A getUpdates answer: {"ok": true, "result": [...]}, and nothing else.
_ANSWER_HEAD = re.compile(rb'\s*\{\s*"ok"\s*:\s*true\s*,\s*"result"\s*:\s*\[')
_ANSWER_TAIL = re.compile(rb"\]\s*\}\s*$")
# Where an update of the list begins, with its id as its first key. Never inside a
# string (a quote in one is escaped), and no other Bot API object has an update_id.
_UPDATE_START = re.compile(rb'[\[,]\s*\{\s*"update_id"\s*:\s*(\d+)\s*[,}]')
_UPDATE_ID_KEY = b'"update_id"'


# Stores updates in hand (their bodies, as Telegram sent them) before they are
# confirmed; and deletes stored ones once handled (by update id).
Spill = Callable[[list[dict[str, Any]]], Awaitable[None]]
Forget = Callable[[list[int]], Awaitable[None]]


class HandledUpdates:
    """The fetched updates not yet handled (with their bodies, should they have to
    be stored), and the newest id fetched."""

    def __init__(self, spill: Spill | None = None, forget: Forget | None = None) -> None:
        self._open: dict[int, dict[str, Any]] = {}
        self._stored: set[int] = set()
        self._done_stored: list[int] = []
        self._newest = -1
        self._finished = asyncio.Event()
        self._spill = spill
        self._forget = forget

    def fetched(self, updates: Iterable[dict[str, Any]]) -> None:
        for body in updates:
            update_id = body["update_id"]
            self._open[update_id] = body
            self._newest = max(self._newest, update_id)

    def finished(self, update: object) -> None:
        """Called once each update is handled, dropped or failed."""
        if isinstance(update, Update) and update.update_id in self._open:
            del self._open[update.update_id]
            if update.update_id in self._stored:
                self._stored.discard(update.update_id)
                self._done_stored.append(update.update_id)
            self._finished.set()

    async def store_in_hand(self) -> None:
        """Store the updates in hand not stored yet: they are about to be confirmed."""
        todo = [body for update_id, body in self._open.items() if update_id not in self._stored]
        if not todo or self._spill is None:
            return
        await self._spill(todo)
        self._stored.update(body["update_id"] for body in todo)
        log.info("updates in hand stored before they are confirmed count=%d", len(todo))

    async def forget_handled(self) -> None:
        """Delete the stored updates handled since (a crash first: handled again by
        the next process, where the engine's event claim makes it change nothing)."""
        done, self._done_stored = self._done_stored, []
        if done and self._forget is not None:
            try:
                await self._forget(done)
            except Exception:
                self._done_stored.extend(done)
                raise

    @property
    def newest(self) -> int:
        return self._newest

    def already_fetched(self, update_id: int) -> bool:
        return update_id <= self._newest

    @property
    def oldest_open(self) -> int | None:
        return min(self._open) if self._open else None

    async def wait_for_one(self, within: float) -> None:
        self._finished.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._finished.wait(), within)


class ConfirmingRequest(HTTPXRequest):
    """PTB's HTTPX request (as the builder makes it for getUpdates), confirming only
    what `handled` says is done."""

    def __init__(self, handled: HandledUpdates, **kwargs: Any) -> None:
        kwargs.setdefault("connection_pool_size", 1)
        super().__init__(**kwargs)
        self._handled = handled

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[int, bytes]:
        if not url.endswith("/getUpdates") or request_data is None:
            return await super().do_request(url, method, request_data, *args, **kwargs)
        past_newest = False
        while True:
            try:
                await self._handled.forget_handled()
            except Exception as exc:  # left for the next ask
                log.warning("handled updates not deleted error=%s", type(exc).__name__)
            asked = await self._asked(request_data, past_newest)
            status, payload = await super().do_request(url, method, asked, *args, **kwargs)
            if status != 200:
                return status, payload
            split = split_answer(payload, self._handled.newest)
            if split is not None:
                count, fresh, answer = split
            else:
                body = json.loads(payload)
                result = body.get("result")
                if not isinstance(result, list):
                    return status, payload
                count = len(result)
                fresh = [u for u in result if not self._handled.already_fetched(u["update_id"])]
                body["result"] = fresh
                answer = json.dumps(body).encode()
            if fresh or not count:
                self._handled.fetched(fresh)
                return status, answer
            # Only updates still in hand came back. Behind a full answer of them (a
            # backlog) newer ones may wait: ask past them at once. Otherwise there is
            # nothing newer yet: ask again once one is done.
            past_newest = count >= _limit(request_data)
            if not past_newest:
                await self._handled.wait_for_one(RECHECK_SECONDS)

    async def _asked(self, request_data: RequestData, past_newest: bool) -> RequestData:
        oldest = self._handled.oldest_open
        # From the oldest in hand, a full answer could hold nothing new: skip it.
        behind = oldest is not None and self._handled.newest - oldest + 1 >= _limit(request_data)
        if past_newest or behind:
            # Asking past them confirms the updates in hand: stored first. If they
            # cannot be, this ask fails and PTB asks again after its backoff.
            try:
                await self._handled.store_in_hand()
            except Exception as exc:
                raise NetworkError(f"updates in hand not stored: {type(exc).__name__}") from exc
            return _with_offset(request_data, self._handled.newest + 1)
        return self._from_oldest_in_hand(request_data)

    def _from_oldest_in_hand(self, request_data: RequestData) -> RequestData:
        oldest = self._handled.oldest_open
        offset = request_data.parameters.get("offset")
        if oldest is None or (isinstance(offset, int) and offset <= oldest):
            return request_data
        return _with_offset(request_data, oldest)


def split_answer(payload: bytes, newest: int) -> tuple[int, list[dict[str, Any]], bytes] | None:
    """A getUpdates answer's update count, its updates with an id above `newest`
    (decoded), and the answer with only those; None unless the answer is laid out as
    Telegram writes it (each update's id its first key, ids ascending), when the
    caller decodes it whole."""
    head = _ANSWER_HEAD.match(payload)
    tail = _ANSWER_TAIL.search(payload)
    if head is None or tail is None or tail.start() < head.end() - 1:
        return None
    begin, end = head.end() - 1, tail.start()
    starts = list(_UPDATE_START.finditer(payload, begin, end))
    if not starts:
        # Only an empty list is understood here.
        return (0, [], payload) if not payload[begin + 1 : end].strip() else None
    ids = [int(match.group(1)) for match in starts]
    if (
        starts[0].start() != begin
        # Every update's id is where an update begins: none was passed over.
        or payload.count(_UPDATE_ID_KEY, begin, end) != len(starts)
        or any(later <= earlier for earlier, later in itertools.pairwise(ids))
    ):
        return None
    first_new = bisect.bisect_right(ids, newest)
    if first_new == len(ids):
        return len(ids), [], b'{"ok":true,"result":[]}'
    new_part = payload[starts[first_new].start() + 1 : end]
    try:
        fresh = json.loads(b"[" + new_part + b"]")
    except ValueError:
        return None
    if (
        not isinstance(fresh, list)
        or len(fresh) != len(ids) - first_new
        or any(
            not isinstance(u, dict) or u.get("update_id") != i
            for u, i in zip(fresh, ids[first_new:], strict=True)
        )
    ):
        return None
    return len(ids), fresh, b'{"ok":true,"result":[' + new_part + b"]}"


def _with_offset(request_data: RequestData, offset: int) -> RequestData:
    kept = [p for p in request_data._parameters if p.name != "offset"]
    return RequestData([*kept, RequestParameter("offset", offset, None)])


def _limit(request_data: RequestData) -> int:
    limit = request_data.parameters.get("limit")
    return limit if isinstance(limit, int) and 0 < limit <= LIMIT else LIMIT
