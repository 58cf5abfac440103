"""Wiring: content, store, engine, dispatcher and scheduler, built once at start.

Everything that can be wrong with the setup (content, database path) fails here,
before any person is talked to, with a message naming the file.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.config import DEFAULT_CONTENT_DIR, Settings
from bot.heartbeat import Heartbeat
from bot.metrics import Metrics
from bot.outbox import Limits, Outbox
from bot.scheduler import DispatchScheduler, Retention
from dialogs.clock import Clock, SystemClock
from dialogs.content import Content, load_content
from dialogs.delivery import LEASE as OUTBOX_LEASE
from dialogs.delivery import Delivery, Sender
from dialogs.engine import Engine
from dialogs.followups.dispatcher import Dispatcher
from dialogs.insights.drawing import draw_charts
from dialogs.safety.resource_text import resource_text
from dialogs.safety.resources import SafetyResources
from dialogs.safety.screen import SafetyScreen
from dialogs.user_ref import set_user_ref_secret
from storage import SqlStore, open_store
from storage.notify import wakeups_for
from storage.open import stored_user_ref_secret
from storage.send_budget import PostgresSendBudget

if TYPE_CHECKING:
    from dialogs.understanding.classifier import IntentClassifier

log = logging.getLogger(__name__)


# How long a graceful stop waits for sends in flight (a 429's retry included);
# a service manager's stop timeout should be longer (docs/deploy.md).
SHUTDOWN_GRACE = 20.0
# How long a dispatcher's claim on a due follow-up holds before another takes it.
FOLLOWUP_LEASE = timedelta(minutes=5)


class SetupError(Exception):
    """A problem with configuration or files that stops the guide from starting."""


@dataclass(slots=True)
class Guide:
    content: Content
    store: SqlStore
    engine: Engine
    dispatcher: Dispatcher
    scheduler: DispatchScheduler
    settings: Settings
    # Sends and marks the outbox rows, through the lanes below.
    delivery: Delivery
    # Read live by the dispatcher and the delivery, so platforms can join after start:
    # each platform's scheduled lane, and its interactive lane.
    senders: dict[str, Sender] = field(default_factory=dict)
    interactive: dict[str, Sender] = field(default_factory=dict)
    outboxes: dict[str, Outbox] = field(default_factory=dict)
    # The phrase tier of the safety screen, for the adapters' per-person queues: a
    # crisis or danger signal goes ahead of the person's other events.
    screen: SafetyScreen | None = None
    # Whether someone is a member of a group chat, per platform, registered by each
    # adapter at start (Telegram getChatMember, Discord guild membership): only
    # members may join a group reflection. Read live by the engine's check.
    members: dict[str, GroupMemberCheck] = field(default_factory=dict)
    # Per platform, the link that opens a partner invitation code there, registered
    # by the adapter at start (Telegram's deep link). Read live by the engine.
    invite_links: dict[str, Callable[[str], str]] = field(default_factory=dict)
    # What /metrics shows (bot/ops_http.py); the engine reports to it.
    metrics: Metrics = field(default_factory=Metrics)
    clock: Clock = field(default_factory=SystemClock)
    # PostgreSQL: this worker's liveness (started with the scheduler).
    heartbeat: Heartbeat | None = None

    async def add_platform(self, platform: str, sender: Sender) -> Outbox:
        """Send through a paced outbox: scheduled messages on its wave lane,
        interactive replies (the adapter's) on its fast one."""
        outbox = Outbox.with_limits(sender, limits_for(platform, self.settings))
        # A platform whose limit counts requests says what each send costs (Discord).
        outbox.weigh = getattr(sender, "requests_for", None)
        if self.store.engine.dialect.name == "postgresql":
            # Several workers may share the database: the cap holds across them.
            outbox.share_cap(PostgresSendBudget(self.store.engine, platform))
        outbox.on_sent = self.metrics.sent_on(platform)
        self.metrics.watch_queue(platform, lambda: outbox.pending)
        await outbox.start()
        self.outboxes[platform] = outbox
        self.senders[platform] = outbox.scheduled
        self.interactive[platform] = outbox.interactive
        return outbox

    async def finish_sends(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Close the outboxes: no new sends; those in flight get up to `grace`
        seconds to finish (their marks are written by `close`). Call it while the
        platforms can still send, before their adapters disconnect."""
        if all(outbox.closed for outbox in self.outboxes.values()):
            return
        log.info("finishing the sends in flight (up to %.0f s)", grace)
        try:
            async with asyncio.timeout(grace):
                for outbox in self.outboxes.values():
                    await outbox.close()
        except TimeoutError:
            # Cancelled mid-send: those rows stay pending and are released by
            # `close`, so one may be sent twice (the crash window of reliability.md).
            log.warning("sends still in flight after %.0f s were stopped", grace)

    async def close(self, *, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop planning first, then sending, then the store they both use. Sends in
        flight get up to `grace` seconds to finish and be marked; then what this
        process claimed and did not finish is released for other workers at once."""
        await self.scheduler.shutdown()
        await self.finish_sends(grace)
        await self.delivery.close()
        try:
            followups, rows = await self.store.release_claims(self.clock.now())
        except Exception as exc:
            # Not fatal: the leases give them back later.
            log.warning("claims not released error=%s", type(exc).__name__)
        else:
            log.info("released claims followups=%d outbox_rows=%d", followups, rows)
        # Alive until now: sends in flight were still this worker's.
        if self.heartbeat is not None:
            await self.heartbeat.close()
        await self.store.close()


# chat id, user id -> whether that user is a member of that group chat.
GroupMemberCheck = Callable[[str, str], Awaitable[bool]]


async def _member(
    members: dict[str, GroupMemberCheck], platform: str, chat_id: str, user_id: str
) -> bool:
    check = members.get(platform)
    # A platform without groups (the console) has nothing to check.
    return True if check is None else await check(chat_id, user_id)


def _invite_link(links: dict[str, Callable[[str], str]], code: str) -> str | None:
    # Telegram is the one platform where a link can open the guide with a code.
    make = links.get("telegram")
    return None if make is None else make(code)


def limits_for(platform: str, settings: Settings) -> Limits:
    if platform == "telegram":
        return Limits(
            settings.telegram_rate,
            per_chat_per_second=settings.telegram_rate_per_chat,
            chat_burst=settings.telegram_chat_burst,
            per_group_per_minute=settings.telegram_group_messages_per_minute,
            replies_per_second=settings.telegram_reply_rate,
        )
    if platform == "discord":
        # Discord's global limit counts every request, replies included.
        return Limits(settings.discord_rate, replies_per_second=settings.discord_rate)
    return Limits(None)


def local_zone(name: str | None) -> ZoneInfo:
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SetupError(
                f"PAUSECHECK_TIMEZONE={name!r} is not an IANA zone name such as 'Europe/London'"
            ) from exc
    from tzlocal import get_localzone_name

    try:
        return ZoneInfo(get_localzone_name() or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


async def open_guide(
    settings: Settings,
    clock: Clock,
    *,
    delay_scale: float = 1.0,
    sweep_seconds: float | None = None,
) -> Guide:
    content = load_content(settings.content_dir)
    safety_dir = settings.content_dir / "safety"
    screen = SafetyScreen.from_file(safety_dir / "signals.yaml")
    resources = SafetyResources.from_file(safety_dir / "resources.yaml")
    store = await open_store(
        settings.database_url, clock=clock, encryption_keys=settings.encryption_key_list()
    )
    try:
        return await _build_guide(
            settings, clock, store, content, screen, resources, delay_scale, sweep_seconds
        )
    except BaseException:
        # Closed here, or the database driver's thread outlives the event loop and
        # prints "Event loop is closed" under the one-line error.
        await store.close()
        raise


async def _build_guide(
    settings: Settings,
    clock: Clock,
    store: SqlStore,
    content: Content,
    screen: SafetyScreen,
    resources: SafetyResources,
    delay_scale: float,
    sweep_seconds: float | None,
) -> Guide:
    # The key of the user references in logs: configured, or made once and stored.
    configured = settings.user_ref_secret
    set_user_ref_secret(
        configured.get_secret_value()
        if configured is not None
        else await stored_user_ref_secret(store, clock)
    )
    zone = local_zone(settings.timezone)
    wake: list[DispatchScheduler] = []
    members: dict[str, GroupMemberCheck] = {}
    invite_links: dict[str, Callable[[str], str]] = {}
    metrics = Metrics()

    def on_scheduled(due: datetime) -> None:
        if wake:
            wake[0].notify(due)

    engine = Engine(
        content,
        store,
        clock,
        screen,
        lambda signal, country: resource_text(resources, signal, country),
        timezone=zone,
        delay_scale=delay_scale,
        on_followup_scheduled=on_scheduled,
        group_member=lambda platform, chat, user: _member(members, platform, chat, user),
        reader=_reader(content, settings),
        invite_link=lambda code: _invite_link(invite_links, code),
        observer=metrics,
    )
    senders: dict[str, Sender] = {}
    interactive: dict[str, Sender] = {}
    delivery = Delivery(
        store,
        clock,
        interactive=interactive,
        scheduled=senders,
        reply_ttl=timedelta(seconds=settings.outbox_reply_ttl_seconds),
        scheduled_ttl=timedelta(seconds=settings.outbox_scheduled_ttl_seconds),
        # Not shrunk with the demo clock: it covers a real send (retries, a 429's
        # wait, a toast answered first), which takes as long at any clock, and the
        # rows' limits are real time too. A restart on SQLite takes a dead
        # process's rows at once anyway.
        lease=OUTBOX_LEASE,
        # A reply's chart, sent again after a crash, is drawn again.
        prepare=draw_charts,
    )
    # The follow-up lease shrinks with the demo clock: a crashed claim must come
    # back before the follow-up's own (shrunk) limit makes it missed.
    dispatcher = Dispatcher(
        store, engine, senders, clock, delivery=delivery, lease=FOLLOWUP_LEASE / delay_scale
    )
    retention = Retention(
        journal=timedelta(days=settings.journal_retention_days),
        events=timedelta(days=settings.event_retention_days),
        reflection_answers=timedelta(days=settings.reflection_retention_days),
        partner_signals=timedelta(days=settings.signal_retention_days),
    )
    # Several workers may share the database: each says it is alive, and takes a
    # dead one's claims over within seconds (bot/heartbeat.py).
    heartbeat = Heartbeat(store) if store.engine.dialect.name == "postgresql" else None
    scheduler = DispatchScheduler(
        dispatcher,
        store,
        sweep_seconds=sweep_seconds or settings.sweep_seconds,
        clock=clock,
        retention=retention,
        # Other workers' follow-ups and left rows wake this one (PostgreSQL only).
        wakeups=wakeups_for(settings.database_url),
        heartbeat=heartbeat,
    )
    wake.append(scheduler)
    return Guide(
        content,
        store,
        engine,
        dispatcher,
        scheduler,
        settings,
        delivery,
        senders,
        interactive,
        screen=screen,
        members=members,
        invite_links=invite_links,
        metrics=metrics,
        clock=clock,
        heartbeat=heartbeat,
    )


def _reader(content: Content, settings: Settings) -> IntentClassifier | None:
    """The intent model for typed text; None for content that ships no examples.
    Imported here: scikit-learn (with SciPy) takes seconds to import, which commands
    that open no guide (`db`, `keys`, `content`) need not pay."""
    from dialogs.understanding.classifier import load_or_train

    if not content.examples_dir.is_dir():
        return None
    return load_or_train(content.examples_dir, settings.cache_dir or default_cache_dir())


def default_cache_dir() -> Path:
    """`data/cache` of this checkout: the same for every working directory, so a
    model trained once serves every later start."""
    return DEFAULT_CONTENT_DIR.parent / "data" / "cache"
