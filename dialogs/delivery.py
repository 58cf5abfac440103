"""Delivering what the guide owes people: outbox rows, sent in order and marked.

Every message the engine says is a row (`dialogs.store.OutboundRow`), written in the
same transaction as the turn or follow-up that said it (`store_reply`,
`StoreSession.queue_followup`). After commit the caller hands the rows to
`Delivery.send`, the one code path for interactive replies, follow-ups and group
posts alike:

1. a row older than its kind's limit (10 minutes for a reply, an hour for a
   scheduled message, by default) is dropped and recorded "expired", never sent late;
2. the rest go to their chats through the platform's sender (replies on the
   interactive lane, scheduled rows on the wave's), consecutive rows of one chat in
   one call, chats side by side, each chat's rows in order;
3. each row is marked SENT as the platform accepts it. Marks from every send in
   flight are written together (a group commit), so the window between a send and
   its mark is one short transaction, and `send` returns once its marks are written.

So delivery is at least once: a crash before a row's send leaves it pending, and the
resend sweep sends it once (`resend_unsent`, at start and on every dispatcher
round); only a crash between the platform accepting a row and its mark being
written sends that row twice. A row this process is sending is `held`: the sweep
leaves it alone however long its send takes.

A message goes only to its address. A sender asked to deliver somewhere it does not
reach (`Misaddressed`: two consoles with different users on one database, where
either dispatcher may run either person's follow-up) shows nothing; the rows stay
pending, say why, and are released for a process whose sender does reach them, while
this process never takes them again.

What can go wrong with a send, per row: the person blocked the guide or closed DMs
(`RecipientUnreachable`): dropped "unreachable", the person marked unreachable and
their planned messages cancelled, as the dispatcher always did; the platform refuses
that message for good (`Refused`): dropped "refused"; sending is shutting down
(`NotSent`): left pending for the next start; anything else (a network outage that
outlasted the sender's retries): left pending, and the chat's later rows wait with it.

Order within a chat holds whatever fails: no row is sent while an earlier row to its
address is pending. The next send to that address, or the sweep after the lease,
sends what is owed from the lowest seq first (`_send_address`, `Store.take_chat`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol, cast

from dialogs.clock import Clock
from dialogs.events import Address, Outbound
from dialogs.store import OutboundKind, OutboundRow, OutboundStatus, Store, StoreSession, UserKey
from dialogs.user_ref import user_ref

log = logging.getLogger(__name__)

REPLY_TTL = timedelta(minutes=10)
SCHEDULED_TTL = timedelta(hours=1)
# How long a sender may hold a row before another process (or this one's sweep,
# for a row it no longer holds) sends it again.
LEASE = timedelta(seconds=30)
# Rows taken per sweep round.
SWEEP_LIMIT = 1000
# Above this many rows sent ahead of their own send, the old ones are forgotten.
_TAKEN_KEPT = 1024

# Called with the index of each message the platform accepted, in order.
Delivered = Callable[[int], None]
# Turns stored messages into what a sender takes: draws their charts (a row read
# back after a crash holds what a chart shows, not its picture).
Prepare = Callable[[Sequence[Outbound]], Awaitable[list[Outbound]]]
Mark = tuple[int, OutboundStatus, str | None]


class Sender(Protocol):
    async def send(self, address: Address, messages: Sequence[Outbound]) -> None:
        """Deliver messages to a chat; raises if the platform refused them
        (`RecipientUnreachable` when the person blocked the bot or closed DMs)."""
        ...


class TrackingSender(Protocol):
    """A sender that says which messages got through before it failed. Senders that
    can (the adapters, the outbox's lanes) set `tracks_delivery = True`."""

    tracks_delivery: bool

    async def send(
        self, address: Address, messages: Sequence[Outbound], delivered: Delivered | None = None
    ) -> None: ...


class RecipientUnreachable(Exception):
    """The platform says this person cannot be messaged (blocked, DMs closed)."""


class NotSent(Exception):
    """Nothing was sent because sending is shutting down (not a refusal): the rows
    stay pending for the next start, and a dispatcher round stops."""


class Refused(Exception):
    """The platform refused this message and would refuse it again (a bad request):
    it is dropped rather than retried."""


class Misaddressed(Exception):
    """This sender does not deliver to that address: another platform's, or, on the
    console, another person's terminal. Nothing was shown; the rows stay pending,
    with the reason, for the process whose sender does (`Store.release_outbound`)."""


# What a row left for another process's sender says, while it waits.
NOT_OUR_ADDRESS = "not this sender's address"
NO_SENDER_HERE = "no sender for its platform here"
# What a row says while it waits for an earlier row to its address that another
# process is sending.
BEHIND_AN_EARLIER_ROW = "after an earlier message"


async def send_tracked(
    sender: Sender, address: Address, messages: Sequence[Outbound], delivered: Delivered
) -> None:
    """`sender.send`, reporting each message that got through to `delivered`; a
    sender that cannot say reports them all once it returns."""
    if getattr(sender, "tracks_delivery", False):
        await cast(TrackingSender, sender).send(address, messages, delivered)
        return
    await sender.send(address, messages)
    for index in range(len(messages)):
        delivered(index)


class Reply(list[Outbound]):
    """The engine's answer to one event: the messages, in order, and the outbox rows
    they were stored as (one per message, same order). `rows` is empty when nothing
    was stored, and the caller then sends the messages directly: a redelivered event
    (nothing to say), the apology after a failed turn (nothing committed) and a
    reply carrying a file or a chart (files are never stored). The reply to /forget
    is stored with no owner (nothing of the person may remain; the store deletes
    the rows once settled)."""

    __slots__ = ("_row_of", "rows")

    def __init__(self, messages: Iterable[Outbound] = (), rows: Sequence[OutboundRow] = ()):
        super().__init__(messages)
        self.rows: tuple[OutboundRow, ...] = tuple(rows)
        if self.rows and len(self.rows) != len(self):
            raise ValueError("a reply's rows must match its messages one to one")
        self._row_of = {id(message): row for message, row in zip(self, self.rows, strict=False)}

    def row_of(self, message: Outbound) -> OutboundRow | None:
        """The row `message` (one of this reply's own objects) was stored as."""
        return self._row_of.get(id(message))

    def rows_for(self, messages: Sequence[Outbound]) -> list[OutboundRow] | None:
        """The rows of `messages`, or None unless every one of them was stored."""
        rows = [self.row_of(message) for message in messages]
        return None if not rows or None in rows else [row for row in rows if row]

    def after(self, notes: Sequence[Outbound]) -> Reply:
        """This reply with `notes` (an adapter's own words, never stored) first."""
        combined = Reply([*notes, *self])
        combined.rows = self.rows
        combined._row_of = dict(self._row_of)
        return combined


async def store_reply(
    session: StoreSession,
    owner: UserKey,
    address: Address,
    messages: Sequence[Outbound],
    at: datetime,
    *,
    forgotten: bool = False,
    turn: int | None = None,
) -> Reply:
    """Store a turn's messages as outbox rows in its transaction (see `Reply` for
    what is not stored), rendered at the conversation's `turn`. `forgotten`: the
    turn deleted its person (/forget), so the rows have no owner and no turn."""
    if not messages or any(m.attachment is not None for m in messages):
        return Reply(messages)
    if forgotten:
        rows = await session.enqueue_outbound(None, address, messages, at, OutboundKind.REPLY)
    else:
        rows = await session.enqueue_outbound(
            owner, address, messages, at, OutboundKind.REPLY, turn=turn
        )
    return Reply(messages, rows)


@dataclass(frozen=True, slots=True)
class Report:
    """What one `send` did: rows sent, dropped (expired, unreachable, refused; how
    many of those the platform refused), and left pending for the sweep."""

    sent: int = 0
    dropped: int = 0
    left: int = 0
    refused: int = 0

    def __add__(self, other: Report) -> Report:
        return Report(
            self.sent + other.sent,
            self.dropped + other.dropped,
            self.left + other.left,
            self.refused + other.refused,
        )


class Delivery:
    """Sends outbox rows through each platform's senders and records their fate.

    `interactive` and `scheduled` map a platform to its sender for replies and for
    scheduled rows; both are read live, so platforms may be added after this exists.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        interactive: Mapping[str, Sender],
        scheduled: Mapping[str, Sender],
        reply_ttl: timedelta = REPLY_TTL,
        scheduled_ttl: timedelta = SCHEDULED_TTL,
        lease: timedelta = LEASE,
        prepare: Prepare | None = None,
    ) -> None:
        self._store = store
        self._prepare = prepare
        self._clock = clock
        self._lanes = {OutboundKind.REPLY: interactive, OutboundKind.SCHEDULED: scheduled}
        self._ttl = {OutboundKind.REPLY: reply_ttl, OutboundKind.SCHEDULED: scheduled_ttl}
        self._lease = lease
        # Rows this process is sending: the sweep must not take them.
        self._held: set[int] = set()
        # Rows our senders refused as another's (`Misaddressed`): left for the
        # process that can deliver them, never taken by this one again.
        self._elsewhere: set[int] = set()
        # Ordering per address (see `_send_address`): one send at a time; the rows a
        # send left pending (id: seq), which the next send to the address sends
        # first; and rows an earlier send took ahead of their own (id: when).
        self._gates: dict[Address, _Gate] = {}
        self._left: dict[Address, dict[int, int]] = {}
        self._taken: dict[int, datetime] = {}
        # Sends waiting for an earlier row of ours that its sender has not handed
        # over yet, woken when a send to the address ends or rows are marked.
        self._settled: dict[Address, asyncio.Event] = {}
        # The group commit of marks: those noted and not yet taken by a flush, the
        # future their writers wait on, and the flush in flight with its own.
        self._marks: list[Mark] = []
        self._next: asyncio.Future[None] | None = None
        self._writing: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None

    @property
    def platforms(self) -> tuple[str, ...]:
        lanes = self._lanes.values()
        return tuple(sorted({platform for lane in lanes for platform in lane}))

    @property
    def held(self) -> frozenset[int]:
        return frozenset(self._held)

    # ------------------------------------------------------------------ sending

    async def send(self, rows: Sequence[OutboundRow]) -> Report:
        """Send `rows` (any chats, any kinds) and mark each; returns once the marks
        are written. Raises `NotSent` when sending is shutting down (the rows not
        sent stay pending); a row's other failures are recorded, not raised.

        Rows still owed before them to the same address go first (see `_send_address`);
        the report counts those too."""
        if not rows:
            return Report()
        # By address, not chat id: on Discord, DMs to two people who planned their
        # check-ins in the same server channel carry that channel's id.
        chats: dict[Address, list[OutboundRow]] = {}
        for row in rows:
            chats.setdefault(row.address, []).append(row)
        ids = [row.id for row in rows]
        self._held.update(ids)
        try:
            results = await asyncio.gather(
                *(self._send_address(address, chat) for address, chat in chats.items()),
                return_exceptions=True,
            )
        finally:
            await self._written()
            self._held.difference_update(ids)
        report = Report()
        shutting_down: NotSent | None = None
        for result in results:
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, NotSent):
                shutting_down = result
            elif isinstance(result, BaseException):
                log.error("outbox delivery failed", exc_info=result)
            else:
                report += result
        if shutting_down is not None:
            raise shutting_down
        return report

    async def _send_address(self, address: Address, rows: list[OutboundRow]) -> Report:
        """One address's rows, after everything owed to it before them.

        One send per address at a time in this process (`_gates`), and its marks are
        written before the next begins, so a row pending when a send begins is being
        sent by nobody here. Rows that were `first` when written, with nothing this
        process left pending for the address, go as they are; otherwise the store is
        asked (`Store.take_chat`) for every row owed to the address up to them, from
        the lowest seq: rows a failed send left, rows of a dead process, and rows of
        a send still waiting for its turn (which then finds them gone, `_taken`). An
        earlier row of ours that its sender has not handed over yet (it is about to
        send it, or to mark it: a toast) is waited for. A row another live process
        is sending holds back everything after it: those are released for the
        sweep, which sends them in order once it went."""
        gate = self._gates.get(address)
        if gate is None:
            gate = self._gates[address] = _Gate()
        gate.users += 1
        report = Report()
        try:
            while True:
                async with gate.lock:
                    # Taken before the store is read, so a row settled meanwhile
                    # wakes this send up.
                    settled = self._settled.setdefault(address, asyncio.Event())
                    part, wait = await self._send_in_order(address, rows)
                report += part
                if not wait:
                    return report
                # Our own earlier row, not handed over yet by its sender: it is sent
                # or marked in a moment (its lease, should its sender be gone).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(settled.wait(), self._lease.total_seconds())
        finally:
            gate.users -= 1
            if not gate.users:
                del self._gates[address]
            self._wake(address)

    def _wake(self, address: Address) -> None:
        """Rows to `address` were sent or marked: sends waiting for them look again."""
        event = self._settled.pop(address, None)
        if event is not None:
            event.set()

    async def _send_in_order(
        self, address: Address, given: list[OutboundRow]
    ) -> tuple[Report, bool]:
        """What this call may send now, sent; and whether it must wait for an earlier
        row of this process's own and come back."""
        rows = sorted((row for row in given if self._taken.pop(row.id, None) is None), key=_by_seq)
        if not rows:
            return Report(), False  # all sent ahead of this call, by an earlier one's
        left = self._left.get(address, {})
        waiting = 0
        again = False
        if not (left or not all(row.first for row in rows)):
            todo = rows
        else:
            now = self._clock.now()
            turn = await self._store.take_chat(
                address,
                rows[-1].seq,
                now,
                self._lease,
                have={row.id: row for row in rows},
                elsewhere=self._elsewhere,
                known=_LiveUnion(self._held, set(left)),
            )
            todo = list(turn.rows)
            mine = {row.id for row in rows}
            for row in todo:
                if row.id not in mine and row.id not in left:
                    # Held by a send waiting for its turn: it will find it gone.
                    self._taken[row.id] = now
            self._forget_taken(now)
            if turn.behind_own:
                again = True
                self._settle(address, rows[-1].seq, {row.id for row in todo}, ())
            else:
                self._settle(address, rows[-1].seq, {row.id for row in todo}, turn.waiting)
                if turn.waiting_behind is not None:
                    waiting = len(turn.waiting)
                    await self._wait_behind(address, turn.waiting_behind, turn.waiting)
        now = self._clock.now()
        live: list[OutboundRow] = []
        expired = 0
        for row in todo:
            if now - row.created_at > self._ttl[row.kind]:
                self._note((row.id, OutboundStatus.DROPPED, "expired"))
                expired += 1
            else:
                live.append(row)
        if expired:
            log.info("outbox rows too old to send, dropped count=%d", expired)
        report = Report(dropped=expired, left=waiting)
        if live:
            report += await self._send_chat(live)
        # The next send to this address must see these marks (see `_send_address`).
        await self._written()
        return report, again

    def _forget_taken(self, now: datetime) -> None:
        """A row taken ahead whose own send never came (its caller was cancelled)
        is forgotten after the lease, when the sweep would have sent it anyway."""
        if len(self._taken) > _TAKEN_KEPT:
            for id_, at in list(self._taken.items()):
                if now - at > self._lease:
                    del self._taken[id_]

    def _settle(
        self, address: Address, up_to: int, taken: set[int], waiting: Sequence[int]
    ) -> None:
        """After the store was asked about `address` up to `up_to`: of the rows this
        process left pending there, those it did not find (they went) or took are
        settled; those waiting stay."""
        left = self._left.pop(address, {})
        kept = {i: seq for i, seq in left.items() if seq > up_to and i not in taken}
        kept.update({i: left.get(i, up_to) for i in waiting})
        if kept:
            self._left[address] = kept

    async def _wait_behind(self, address: Address, behind: int, waiting: Sequence[int]) -> None:
        """Rows that must wait for an earlier row another process holds (or one for
        another process's sender): released, so whichever sweep comes after it sends
        them, in order."""
        if not waiting:
            return
        if behind in self._elsewhere:
            self._elsewhere.update(waiting)
            reason = NOT_OUR_ADDRESS
        else:
            reason = BEHIND_AN_EARLIER_ROW
        log.info("rows wait behind an earlier one being sent elsewhere count=%d", len(waiting))
        await self._store.release_outbound(waiting, reason, self._clock.now())

    async def _send_chat(self, rows: list[OutboundRow]) -> Report:
        """One address's rows, in order: consecutive rows of one kind in one call.
        Stops at a failure that leaves a row pending, so nothing overtakes it; the
        rows left are remembered (`_left`), so the next send to the address sends
        them first."""
        sent = dropped = refused = 0
        queue = list(rows)
        while queue:
            run = _leading_run(queue)
            address = run[0].address
            lane = self._lanes[run[0].kind].get(address.platform)
            if lane is None:
                # Left to a process that sends there (another worker on PostgreSQL,
                # woken by the release), as for a row another sender must deliver.
                ids = [row.id for row in queue]
                self._elsewhere.update(ids)
                log.warning("no sender for platform=%s; rows left pending", address.platform)
                await self._store.release_outbound(ids, NO_SENDER_HERE, self._clock.now())
                return Report(sent, dropped, len(queue), refused)
            accepted, failure = await self._send_run(lane, run)
            sent += accepted
            queue = queue[accepted:]
            if failure is None:
                continue
            if isinstance(failure, Misaddressed):
                ids = [row.id for row in queue]
                self._elsewhere.update(ids)
                log.warning(
                    "rows for an address this process does not reach, left count=%d", len(ids)
                )
                await self._store.release_outbound(ids, NOT_OUR_ADDRESS, self._clock.now())
                return Report(sent, dropped, len(queue), refused)
            if isinstance(failure, RecipientUnreachable):
                for row in queue:
                    self._note((row.id, OutboundStatus.DROPPED, "unreachable"))
                await self._unreachable(address)
                return Report(sent, dropped + len(queue), 0, refused)
            if isinstance(failure, Refused):
                log.warning("the platform refused a message for good; dropped")
                self._note((queue[0].id, OutboundStatus.DROPPED, "refused"))
                dropped += 1
                refused += 1
                queue = queue[1:]
                continue
            log.warning(
                "send failed, left for the resend sweep private=%s error=%s rows=%d",
                address.is_private,
                type(failure).__name__,
                len(queue),
            )
            self._leave(queue)
            return Report(sent, dropped, len(queue), refused)
        return Report(sent, dropped, 0, refused)

    def _leave(self, rows: Sequence[OutboundRow]) -> None:
        for row in rows:
            self._left.setdefault(row.address, {})[row.id] = row.seq

    async def _send_run(self, lane: Sender, run: list[OutboundRow]) -> tuple[int, Exception | None]:
        """Send one run; how many of its leading rows got through (each marked SENT as
        the platform accepts it), and the failure that stopped it, if any."""
        accepted: list[int] = []

        def delivered(index: int) -> None:
            accepted.append(index)
            self._note((run[index].id, OutboundStatus.SENT, None))

        messages = [row.message for row in run]
        try:
            if self._prepare is not None and any(m.chart is not None for m in messages):
                messages = await self._prepare(messages)
            await send_tracked(lane, run[0].address, messages, delivered)
        except NotSent:
            raise
        except Exception as exc:
            return len(accepted), exc
        for index in range(len(run)):
            if index not in accepted:  # a sender that returned without saying
                delivered(index)
        return len(run), None

    async def _unreachable(self, address: Address) -> None:
        """No retries: a blocked bot stays blocked. Stop planning for them until
        they write again; everyone else goes on."""
        if not address.is_private:
            log.info("group chat unreachable; its rows dropped")
            return
        user = UserKey(address.platform, address.user_id)
        log.info("recipient unreachable user=%s", user_ref(user.platform, user.user_id))
        now = self._clock.now()
        async with self._store.session() as session:
            profile = await session.load_profile(user)
            await session.save_profile(user, replace(profile, unreachable_at=now))
            await session.cancel_followups(user)

    async def mark(
        self, rows: Sequence[OutboundRow], status: OutboundStatus, reason: str | None = None
    ) -> None:
        """Record rows the caller delivered itself (`SENT`: a Discord interaction's
        reply) or decided not to send (`SUPERSEDED`: said as a toast instead)."""
        for row in rows:
            self._note((row.id, status, reason))
        await self._written()
        for address in {row.address for row in rows}:
            self._wake(address)

    # ------------------------------------------------------------------ the sweep

    async def resend_unsent(self, *, startup: bool = False) -> int:
        """Send pending rows whose sender gave up or died (see `Store.claim_unsent`),
        oldest first in each chat; returns how many were taken."""
        platforms = self.platforms
        if not platforms:
            return 0
        taken = 0
        while True:
            rows = await self._store.claim_unsent(
                self._clock.now(),
                self._lease,
                platforms,
                held=_LiveUnion(self._held, self._elsewhere),
                startup=startup,
                limit=SWEEP_LIMIT,
            )
            if not rows:
                return taken
            taken += len(rows)
            log.warning("re-sending outbox rows left unsent count=%d", len(rows))
            report = await self.send(rows)
            if report.left or len(rows) < SWEEP_LIMIT:
                # Still failing: the next round tries again, after the lease.
                return taken

    # ------------------------------------------------------------------ marks

    def _note(self, mark: Mark) -> None:
        self._marks.append(mark)
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush(), name="outbox-marks"
            )

    async def _flush(self) -> None:
        # Marks noted while one flush writes go into the next: under load, one
        # transaction records many sends.
        while self._marks:
            marks, self._marks = self._marks, []
            self._writing, self._next = self._next, None
            try:
                await self._store.mark_outbound(marks, self._clock.now())
            except Exception:
                # The rows stay pending and are sent again after the lease: a
                # duplicate, the lesser harm than a reply that never comes.
                log.exception("outbox marks not written count=%d", len(marks))
            finally:
                if self._writing is not None and not self._writing.done():
                    self._writing.set_result(None)
                self._writing = None

    async def _written(self) -> None:
        """Wait until every mark noted so far is written."""
        for future in (self._writing, self._next):
            if future is not None:
                await asyncio.shield(future)

    async def close(self) -> None:
        """Write the marks still pending."""
        await self._written()
        if self._flusher is not None:
            await self._flusher


class _LiveUnion(Collection[int]):
    """Two sets read when the store uses them, not when they are passed: a send that
    finishes meanwhile has freed its rows, and the sweep may take them."""

    def __init__(self, first: set[int], second: set[int]) -> None:
        self._first, self._second = first, second

    def __contains__(self, item: object) -> bool:
        return item in self._first or item in self._second

    def __iter__(self) -> Iterator[int]:
        return iter(self._first | self._second)

    def __len__(self) -> int:
        return len(self._first | self._second)


@dataclass(slots=True)
class _Gate:
    """One address's turn to send, and how many sends use or wait for it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def _by_seq(row: OutboundRow) -> int:
    return row.seq


def _leading_run(rows: list[OutboundRow]) -> list[OutboundRow]:
    """The first rows of `rows` that share an address and a kind."""
    first = rows[0]
    run = [first]
    for row in rows[1:]:
        if row.address != first.address or row.kind is not first.kind:
            break
        run.append(row)
    return run
