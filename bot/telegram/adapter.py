"""The guide on Telegram, through python-telegram-bot: a thin adapter over the engine.

Updates become `Inbound` events (`bot.telegram.updates`), the engine's replies go out
through the guide's outbox (interactive lane, ahead of check-in waves), and the outbox
calls `send`, which renders them (`bot.telegram.render`) and makes the Bot API calls
with retries (`bot.telegram.retry`). The adapter keeps no conversation state: only the
bot's own id and username, from getMe at start. A group reflection's posts and private
prompts (`Outbound.to`) go to their own chats, and whether someone is a group admin
(`Inbound.facilitator`) comes from getChatMember (`bot.telegram.reflection`).

Long polling by default; a webhook when `PAUSECHECK_TELEGRAM_WEBHOOK_URL` is set,
served by our own small server (`bot.telegram.webhook`), which checks Telegram's
secret token before reading a body and refuses bodies over 1 MB. In webhook mode
each update is stored before Telegram is answered and handled through the database
(`bot.telegram.inbox`), so any number of workers may share one database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from telegram import (
    BotCommand,
    CallbackQuery,
    InputFile,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ChatAction
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, TelegramError
from telegram.ext import Application, ApplicationBuilder, TypeHandler

from bot.app import Guide, SetupError
from bot.config import Settings
from bot.ops_http import ops_routes
from bot.outbox import wave_turn
from bot.person_queue import Admission, is_urgent
from bot.telegram.bounded_request import CONNECTIONS, BoundedRequest
from bot.telegram.confirm import ConfirmingRequest, HandledUpdates
from bot.telegram.inbox import WebhookInbox
from bot.telegram.processor import PerPersonProcessor, person_key
from bot.telegram.reflection import (
    anonymous_reflect,
    is_chat_admin,
    is_chat_member,
    needs_facilitator_check,
    refusal_toast,
    send_runs,
)
from bot.telegram.render import Post, deep_link, is_private_chat, render_one
from bot.telegram.retry import PausingRateLimiter, RetryPolicy, with_retries
from bot.telegram.text import first_sentence, with_choice
from bot.telegram.updates import (
    PLATFORM,
    BotIdentity,
    callback_inbound,
    kind_of,
    message_inbound,
)
from bot.telegram.webhook import WebhookServer
from dialogs.clock import Clock, SystemClock
from dialogs.delivery import Delivered, Misaddressed, Refused, Reply
from dialogs.events import Address, Inbound, Outbound
from dialogs.followups.dispatcher import NotSent, RecipientUnreachable
from dialogs.link.codes import START_PREFIX as LINK_START_PREFIX
from dialogs.routing import by_destination
from dialogs.store import OutboundStatus
from dialogs.user_ref import user_ref
from storage.inbox_rows import InboxRows

log = logging.getLogger(__name__)

# httpx logs every request URL at INFO, and a Bot API URL contains the bot token.
# Quieted only when nobody configured that logger on purpose.
_HTTPX_LOG = logging.getLogger("httpx")
if _HTTPX_LOG.level == logging.NOTSET:
    _HTTPX_LOG.setLevel(logging.WARNING)

# Telegram's own limit for messages to one group (20 a minute), which the outbox does
# not know about; the overall rate is the outbox's job, so the limiter leaves it alone.
GROUP_MESSAGES_PER_MINUTE = 20
ALLOWED_UPDATES = ("message", "callback_query")
# "typing" is shown only when the engine has not answered within this many seconds.
TYPING_AFTER = 1.0
# ... and only while at most this many answers are being worked on. With more, the wait
# is the bot's own backlog: a "typing" call for each of them would be more work for a
# bot already behind (it was 0.74 calls per action in a 100-person burst).
TYPING_BUSY = 8

_App = Application[Any, Any, Any, Any, Any, Any]
# No link previews, ever: a preview of a link in a shared answer or a quoted message
# would put a stranger's page in front of everyone (and fetch it on their behalf).
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


class TelegramAdapter:
    name = PLATFORM
    # `send` says which messages Telegram accepted (the outbox marks their rows).
    tracks_delivery = True

    def __init__(
        self,
        guide: Guide,
        settings: Settings,
        *,
        clock: Clock | None = None,
        poll_timeout: int = 30,
        retry: RetryPolicy | None = None,
        max_concurrent_updates: int = 256,
        group_messages_per_minute: float = GROUP_MESSAGES_PER_MINUTE,
        typing_after: float = TYPING_AFTER,
        typing_busy: int = TYPING_BUSY,
        connections: int = CONNECTIONS,
    ) -> None:
        if settings.telegram_bot_token is None:
            raise SetupError("TELEGRAM_BOT_TOKEN is not set")
        self._guide = guide
        self._settings = settings
        self._token = settings.telegram_bot_token.get_secret_value()
        self._clock = clock or SystemClock()
        self._poll_timeout = poll_timeout
        self._retry = retry or RetryPolicy()
        self._max_concurrent = max_concurrent_updates
        self._group_rate = group_messages_per_minute
        self._typing_after = typing_after
        self._typing_busy = typing_busy
        self._answering = 0  # engine turns in flight, for `_typing_worth_it`
        self._connections = connections
        self._application: _App | None = None
        self._handled = HandledUpdates()
        self._webhook_server: WebhookServer | None = None
        self._inbox: WebhookInbox | None = None
        self._me: BotIdentity | None = None
        self._known_commands = frozenset(c.name for c in guide.content.commands.commands)

    @property
    def _not_facilitator(self) -> str | None:
        rcopy = self._guide.content.reflection_copy
        return rcopy.not_facilitator if rcopy is not None else None

    @property
    def identity(self) -> BotIdentity | None:
        """The bot's id and username once started."""
        return self._me

    # ------------------------------------------------------------------ lifecycle

    def _build(self) -> _App:
        self._limiter = PausingRateLimiter(
            overall_max_rate=0,
            group_max_rate=self._group_rate,
            max_retries=self._retry.limiter_retries,
        )
        rows = InboxRows(self._guide.store, PLATFORM)
        self._handled = HandledUpdates(
            spill=lambda bodies: rows.put_in_hand(
                [(body["update_id"], self._person_of(body), body) for body in bodies],
                self._clock.now(),
            ),
            forget=rows.forget,
        )
        builder = (
            ApplicationBuilder()
            .token(self._token)
            .rate_limiter(self._limiter)
            .concurrent_updates(
                PerPersonProcessor(
                    self._max_concurrent,
                    burst=self._settings.flood_messages,
                    window=self._settings.flood_seconds,
                    urgent=self._is_urgent,
                    on_dropped=self._on_dropped,
                    finished=self._handled.finished,
                )
            )
            # The guide has its own scheduler; PTB's job queue would be a second one.
            .job_queue(None)
            # Few connections for the bot's calls, the rest waiting in line
            # (bot.telegram.bounded_request): PTB's 256 cost CPU on every call.
            .request(BoundedRequest(self._connections))
        )
        if self._webhook:
            # Our own server feeds the update queue (bot.telegram.webhook).
            builder = builder.updater(None)
        else:
            # Telegram keeps each update until it is handled (bot.telegram.confirm).
            builder = builder.get_updates_request(ConfirmingRequest(self._handled))
        base_url = self._settings.telegram_api_base_url
        if base_url:
            builder = builder.base_url(base_url).base_file_url(_file_url(base_url))
        application: _App = builder.build()
        application.add_handler(TypeHandler(Update, self._on_update))
        application.add_error_handler(self._on_error)
        return application

    async def start(self) -> None:
        if PLATFORM not in self._guide.outboxes:
            raise RuntimeError("add the adapter with guide.add_platform() before start()")
        application = self._build()
        self._application = application
        # While Telegram's retry_after holds every request back, no wave message is
        # handed over to wait in line (they would arrive together, over the cap).
        limiter = self._limiter
        self._guide.outboxes[PLATFORM].hold_waves_while(lambda: limiter.paused)
        try:
            await application.initialize()  # getMe
            self._me = BotIdentity(application.bot.id, application.bot.username)
            # Only a group's members may join its reflection (getChatMember).
            self._guide.members[PLATFORM] = self._is_group_member
            # A partner invitation made on any platform carries this deep link too.
            username = application.bot.username
            self._guide.invite_links[PLATFORM] = lambda code: deep_link(
                username, f"{LINK_START_PREFIX}{code}"
            )
            await self._register_commands(application)
            await application.start()
            if self._settings.telegram_webhook_url:
                await self._start_webhook(application, self._settings.telegram_webhook_url)
            else:
                assert application.updater is not None
                await self._drain_stored(application)
                await application.updater.start_polling(
                    timeout=self._poll_timeout, allowed_updates=list(ALLOWED_UPDATES)
                )
        except InvalidToken:
            await self.stop()
            # PTB's message repeats the token: say which setting, never its value.
            raise SetupError(
                "Telegram refused TELEGRAM_BOT_TOKEN; copy it again from @BotFather"
            ) from None
        except BadRequest as exc:
            await self.stop()
            raise SetupError(f"Telegram refused the bot's setup: {exc}") from None
        except NetworkError as exc:
            await self.stop()
            where = self._settings.telegram_api_base_url or "api.telegram.org"
            raise SetupError(f"cannot reach the Telegram Bot API at {where}: {exc}") from None
        except BaseException:
            await self.stop()
            raise
        log.info("telegram started mode=%s", "webhook" if self._webhook else "polling")

    @property
    def _webhook(self) -> bool:
        return bool(self._settings.telegram_webhook_url)

    async def _drain_stored(self, application: _App) -> None:
        """Before polling: the updates a process that died had stored while they were
        in its hand (bot.telegram.confirm), handled first, in order per person."""
        people = await self._stored_updates(application).drain_stored()
        if people:
            log.info("stored updates handled at start people=%d", people)

    def _stored_updates(self, application: _App) -> WebhookInbox:
        """The updates stored in the database (the inbox), handled through this bot."""
        return WebhookInbox(
            InboxRows(self._guide.store, PLATFORM),
            platform=PLATFORM,
            decode=lambda body: Update.de_json(body, application.bot),
            handle=self._process_stored,
            clock=self._clock,
            lease=timedelta(seconds=self._settings.telegram_webhook_lease_seconds),
        )

    def _person_of(self, body: dict[str, Any]) -> str:
        try:
            person = person_key(Update.de_json(body, self._bot_app().bot))
        except Exception:
            return ""  # stored all the same; handled when read back, or dropped then
        return "" if person is None else str(person)

    async def _start_webhook(self, application: _App, url: str) -> None:
        secret = self._settings.telegram_webhook_secret
        # Without a configured secret, a random one per start still makes Telegram prove
        # itself: setWebhook tells it the new value each time.
        token = secret.get_secret_value() if secret else secrets.token_urlsafe(32)
        inbox = self._stored_updates(application)
        self._inbox = inbox
        await inbox.start()
        log.info("telegram webhook inbox worker=%s", inbox.worker)

        async def accept(body: dict[str, Any], update: Update) -> None:
            person = person_key(update)
            who = "" if person is None else str(person)
            await inbox.receive(body, update.update_id, who, parsed=update)

        server = WebhookServer(
            application,
            listen=self._settings.telegram_webhook_listen,
            port=self._settings.telegram_webhook_port,
            path=urlsplit(url).path,
            secret=token,
            max_bytes=self._settings.telegram_webhook_max_bytes,
            routes=ops_routes(self._guide).routes(),
            accept=accept,
        )
        await server.start()
        self._webhook_server = server
        await with_retries(
            lambda: application.bot.set_webhook(
                url, secret_token=token, allowed_updates=list(ALLOWED_UPDATES)
            ),
            self._retry,
            what="setWebhook",
        )

    async def _register_commands(self, application: _App) -> None:
        commands = [
            BotCommand(spec.name, spec.description) for spec in self._guide.content.commands.menu()
        ]
        try:
            await with_retries(
                lambda: application.bot.set_my_commands(commands),
                self._retry,
                what="setMyCommands",
            )
        except TelegramError as exc:
            # The menu is a convenience: typed commands work without it.
            log.warning("command menu not registered: %s", type(exc).__name__)

    async def stop_receiving(self) -> None:
        """Take no new updates and let those in flight finish; sending still works,
        so the outbox can finish its sends before `stop` disconnects (a graceful
        stop, bot/cli.py)."""
        application = self._application
        if application is None:
            return
        server, self._webhook_server = self._webhook_server, None
        inbox, self._inbox = self._inbox, None
        if server is not None:
            await server.stop()
        if inbox is not None:
            # The stored updates in hand are finished; the rest handed back to the
            # other workers at once.
            await inbox.stop()
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if application.running:
            # Waits for the updates already fetched: their replies still go out,
            # which is why the application is forgotten only after this.
            await application.stop()

    async def stop(self) -> None:
        """Stop receiving, let updates in flight finish, disconnect. Safe to call twice
        or after a failed start."""
        application = self._application
        if application is None:
            return
        try:
            await self.stop_receiving()
        finally:
            self._application = None
            await application.shutdown()

    async def _process_stored(self, update: Update) -> None:
        """A stored webhook update, through the per-person processor as PTB would
        run one from its queue; returns once it is handled and its reply sent."""
        application = self._bot_app()
        await application.update_processor.process_update(
            update, application.process_update(update)
        )

    def _bot_app(self) -> _App:
        if self._application is None:
            raise NotSent("the Telegram adapter is not running")
        return self._application

    # ------------------------------------------------------------------ sending

    async def send(
        self, address: Address, messages: Sequence[Outbound], delivered: Delivered | None = None
    ) -> None:
        """Deliver messages to one chat (the outbox calls this, one call per chat at a
        time); `delivered` hears the index of each message once Telegram accepted all
        of its posts.

        A message's `to`, when set, wins over `address` (a reflection's step timer
        brings group posts and private prompts): those for other chats are delivered
        best effort, after the ones for `address`.

        Raises `RecipientUnreachable` when Telegram says the person blocked the bot or
        the chat is gone, so planning for them stops; `Refused` for any other bad
        request, which would fail the same way again.
        """
        if any((m.to or address).platform != self.name for m in messages):
            # Another platform's chat ids mean nothing here: never guess one.
            raise Misaddressed("not a Telegram address")
        indexed = list(enumerate(messages))
        here = [(n, m) for n, m in indexed if m.to is None or m.to == address]
        others = [(n, m) for n, m in indexed if m.to not in (None, address)]
        _, elsewhere = by_destination([m for _, m in others])
        index_of = {id(m): n for n, m in others}

        async def deliver_run(destination: Address, run: Sequence[Outbound]) -> None:
            await self._deliver(destination, run, delivered, [index_of[id(m)] for m in run])

        try:
            await self._deliver(address, [m for _, m in here], delivered, [n for n, _ in here])
        finally:
            # Straight to the chats, one after another: this already runs in the
            # outbox's worker, which must not wait on its own queue.
            await send_runs(deliver_run, elsewhere, what="send", together=False)

    async def _deliver(
        self,
        address: Address,
        messages: Sequence[Outbound],
        delivered: Delivered | None = None,
        indices: Sequence[int] = (),
    ) -> None:
        private = is_private_chat(address)
        username = self._me.username if self._me else None
        chat_id = int(address.chat_id)
        noticed = False
        try:
            for n, message in enumerate(messages):
                posts, noticed = render_one(
                    message, private=private, bot_username=username, noticed=noticed
                )
                for post in posts:
                    await self._post(chat_id, post)
                if delivered is not None:
                    delivered(indices[n] if indices else n)
        except Forbidden as exc:
            raise RecipientUnreachable(str(exc)) from exc
        except BadRequest as exc:
            if "chat not found" in str(exc).casefold():
                raise RecipientUnreachable(str(exc)) from exc
            raise Refused(str(exc)) from exc

    async def _typing(self, chat_id: int) -> None:
        bot = self._bot_app().bot
        try:
            await with_retries(
                lambda: bot.send_chat_action(chat_id, ChatAction.TYPING),
                self._retry,
                what="sendChatAction",
            )
        except (Forbidden, BadRequest):
            raise
        except TelegramError as exc:
            log.debug("typing action not shown: %s", type(exc).__name__)

    async def _post(self, chat_id: int, post: Post) -> None:
        bot = self._bot_app().bot
        # A wave message's requests keep the wave's pace, retries too (bot.telegram.retry).
        turn = wave_turn()
        if post.document is not None:
            document = post.document
            await with_retries(
                lambda: bot.send_document(
                    chat_id,
                    InputFile(document.data, filename=document.filename),
                    rate_limit_args=turn,
                ),
                self._retry,
                what="sendDocument",
            )
            return
        if post.photo is not None:
            photo = post.photo
            await with_retries(
                lambda: bot.send_photo(
                    chat_id, InputFile(photo.data, filename=photo.filename), rate_limit_args=turn
                ),
                self._retry,
                what="sendPhoto",
            )
            return
        await with_retries(
            lambda: bot.send_message(
                chat_id,
                post.text,
                reply_markup=post.keyboard,
                link_preview_options=NO_PREVIEW,
                rate_limit_args=turn,
            ),
            self._retry,
            what="sendMessage",
        )

    async def _reply(self, address: Address, replies: Sequence[Outbound]) -> None:
        """Send a reply: its outbox rows through the delivery (which marks each), or,
        for what was never stored (an apology, a file, a notice), straight through the
        interactive lane."""
        if isinstance(replies, Reply) and replies.rows:
            report = await self._guide.delivery.send(replies.rows)
            if report.left:
                # Late, never lost: the resend sweep sends them after the lease.
                log.info("reply left for the resend sweep rows=%d", report.left)
            if report.refused:
                # Telegram will never take it: say so, so nobody meets silence.
                raise Refused(f"{report.refused} message(s) of the reply refused")
            return
        here, elsewhere = by_destination(replies)
        outbox = self._guide.outboxes[PLATFORM].interactive
        if not elsewhere:
            if here:
                await outbox.send(address, here)
            return
        # A reflection's group posts and private prompts, best effort, queued before
        # the reply, as the engine ordered them (the facilitator's panel comes after
        # the step it controls). Only the reply's own failure reaches the caller.
        reply = (address, here) if here else None
        await send_runs(outbox.send, elsewhere, what="reply", reply=reply)

    async def _with_facilitator(self, inbound: Inbound) -> Inbound:
        """`Inbound.facilitator` for a `/reflect` command or a reflection button in a
        group: whether the person is an admin there (getChatMember, only then)."""
        if not needs_facilitator_check(inbound):
            return inbound
        admin = await is_chat_admin(
            self._bot_app().bot,
            int(inbound.address.chat_id),
            int(inbound.address.user_id),
            self._retry,
        )
        return replace(inbound, facilitator=admin)

    async def _is_group_member(self, chat_id: str, user_id: str) -> bool:
        bot = self._bot_app().bot
        return await is_chat_member(bot, int(chat_id), int(user_id), self._retry)

    # ------------------------------------------------------------------ receiving

    def _is_urgent(self, update: object) -> bool:
        """A crisis or danger signal or /sos, which goes ahead of the person's queue."""
        if not isinstance(update, Update) or self._me is None:
            return False
        try:
            if update.callback_query is not None:
                inbound = callback_inbound(update, self._clock.now())
            else:
                inbound = message_inbound(update, self._me, self._known_commands)
            return inbound is not None and is_urgent(inbound, self._guide.screen)
        except Exception:
            log.warning("urgency not judged", exc_info=True)
            return False

    async def _on_dropped(self, update: object, admission: Admission) -> None:
        """One kind notice per burst; the dropped updates themselves are not answered."""
        if admission is not Admission.DROPPED_NOTICE or not isinstance(update, Update):
            return
        chat, user = update.effective_chat, update.effective_user
        if chat is None or user is None:
            return
        log.info("burst dropped user=%s", user_ref(PLATFORM, str(user.id)))
        notice = self._guide.content.copy.slow_down
        if update.callback_query is not None:
            await self._answer(update.callback_query, first_sentence(notice))
        address = Address(PLATFORM, str(user.id), str(chat.id), chat.type == "private")
        await self._reply(address, [Outbound(notice)])

    async def _on_update(self, update: Update, context: object) -> None:
        if update.callback_query is not None:
            await self._on_callback(update, update.callback_query)
            return
        if self._me is None:  # set by start() before any update is fetched
            return
        inbound = message_inbound(update, self._me, self._known_commands)
        if inbound is None:
            anonymous = anonymous_reflect(update, self._me)
            if anonymous is not None:
                await self._anonymous_note(anonymous)
            return
        try:
            inbound = await self._with_facilitator(inbound)
            replies = await self._handle(inbound)
            await self._reply(inbound.address, replies)
        except Exception as exc:
            await self._failed(inbound, exc)

    async def _handle(self, inbound: Inbound) -> Reply:
        """The engine's answer. In a private chat, "typing" shows only if the answer is
        not ready within about a second and the bot is not behind: a quick reply needs
        no call for it, and a backlog would only grow with one."""
        handling = asyncio.ensure_future(self._guide.engine.handle(inbound))
        self._answering += 1
        try:
            if not inbound.address.is_private:
                return await handling
            done, _ = await asyncio.wait({handling}, timeout=self._typing_after)
            if not done and self._typing_worth_it():
                with contextlib.suppress(TelegramError):
                    await self._typing(int(inbound.address.chat_id))
            return await handling
        except BaseException:
            handling.cancel()
            raise
        finally:
            self._answering -= 1

    def _typing_worth_it(self) -> bool:
        """Whether a slow answer is slow for its own sake, not behind others'."""
        return self._answering <= self._typing_busy

    async def _anonymous_note(self, address: Address) -> None:
        try:
            copy = self._guide.content.reflection_copy
            assert copy is not None
            await self._reply(address, [Outbound(copy.anonymous_admin)])
        except Exception as exc:
            log.info("anonymous admin note not sent error=%s", type(exc).__name__)

    async def _on_callback(self, update: Update, query: CallbackQuery) -> None:
        copy = self._guide.content.copy
        stale_toast = first_sentence(copy.stale_button)
        inbound = callback_inbound(update, self._clock.now())
        if inbound is None:
            log.info("button press refused user=%s", user_ref(PLATFORM, str(query.from_user.id)))
            await self._answer(query, stale_toast)
            return
        answered = False
        try:
            inbound = await self._with_facilitator(inbound)
            replies = await self._handle(inbound)
            texts = {reply.text for reply in replies}
            refused = refusal_toast(inbound, replies, self._not_facilitator)
            if copy.stale_button in texts or refused is not None:
                # Stale, replayed or forged, or a reflection button pressed by someone
                # who may not: the engine changed nothing, and neither does the chat.
                # A toast says so; the question or the panel is still there. Recorded
                # first: a toast slowed by retries must not leave the rows looking
                # unsent to the sweep, which would post them as messages.
                answered = True
                await self._guide.delivery.mark(replies.rows, OutboundStatus.SUPERSEDED, "toast")
                await self._answer(query, refused or stale_toast)
                return
            accepted = bool(replies) and copy.error_apology not in texts
            answered = True
            side = asyncio.gather(
                self._answer(query), self._show_choice(query) if accepted else _nothing()
            )
            try:
                await self._reply(inbound.address, replies)
            finally:
                await side
        except Exception as exc:
            await self._failed(inbound, exc)
        finally:
            if not answered:
                await self._answer(query)

    async def _answer(self, query: CallbackQuery, text: str | None = None) -> None:
        """Always answer a press, or the person's button keeps spinning."""
        try:
            await with_retries(lambda: query.answer(text), self._retry, what="answerCallbackQuery")
        except TelegramError as exc:
            log.warning("callback not answered: %s", type(exc).__name__)

    async def _show_choice(self, query: CallbackQuery) -> None:
        """Edit the pressed message: buttons gone, the chosen answer shown under it."""
        message = query.message
        if not isinstance(message, Message):
            return
        label = _label(message, query.data)
        shown = with_choice(message.text, label) if message.text and label else None
        bot = self._bot_app().bot
        try:
            if shown is not None:
                # Leaving out reply_markup removes the inline keyboard.
                await with_retries(
                    lambda: bot.edit_message_text(shown, message.chat_id, message.message_id),
                    self._retry,
                    what="editMessageText",
                )
            else:
                await with_retries(
                    lambda: bot.edit_message_reply_markup(message.chat_id, message.message_id),
                    self._retry,
                    what="editMessageReplyMarkup",
                )
        except TelegramError as exc:
            # Cosmetic: the answer was taken either way ("message is not modified" after
            # a redelivery, or a message too old to edit).
            log.info("pressed message not edited: %s", type(exc).__name__)

    async def _failed(self, inbound: Inbound, exc: Exception) -> None:
        """Log with context (never the text) and apologise, so nobody meets silence."""
        kind = kind_of(inbound)
        who = user_ref(PLATFORM, inbound.address.user_id)
        if isinstance(exc, NotSent):
            log.info("reply not sent, shutting down kind=%s user=%s", kind, who)
            return
        if isinstance(exc, RecipientUnreachable):
            log.info("reply not delivered, recipient unreachable kind=%s user=%s", kind, who)
            return
        log.error(
            "telegram update failed kind=%s user=%s error=%s",
            kind,
            who,
            type(exc).__name__,
            exc_info=exc,
        )
        try:
            await self._reply(inbound.address, [Outbound(self._guide.content.copy.error_apology)])
        except Exception as apology_exc:
            log.warning(
                "apology not sent kind=%s user=%s error=%s",
                kind,
                who,
                type(apology_exc).__name__,
            )

    async def _on_error(self, update: object, context: Any) -> None:
        # Only reached by bugs outside the handlers' own error handling. PTB's default
        # would log the whole update, message text included.
        kind = "update"
        who = "-"
        if isinstance(update, Update):
            kind = "callback" if update.callback_query else "message"
            if update.effective_user is not None:
                who = user_ref(PLATFORM, str(update.effective_user.id))
        error = getattr(context, "error", None)
        log.error("telegram error kind=%s user=%s", kind, who, exc_info=error)


async def _nothing() -> None:
    return None


def _label(message: Message, data: str | None) -> str | None:
    markup = message.reply_markup
    if markup is None or data is None:
        return None
    for row in markup.inline_keyboard:
        for button in row:
            if button.callback_data == data:
                return button.text
    return None


def _file_url(base_url: str) -> str:
    """Files live beside the API: ".../bot" serves methods, ".../file/bot" files."""
    trimmed = base_url.rstrip("/")
    if trimmed.endswith("/bot"):
        return trimmed[: -len("/bot")] + "/file/bot"
    return trimmed
