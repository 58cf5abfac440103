"""Simulated people: each is a Telegram user who types commands and text and presses
the buttons the fake recorded in their chat (offered, stale and forged ones), then
waits for the guide's answer the way a person would, bounded, since the guide may
be down. Everything random comes from the person's own seeded generator, so a run
is repeatable up to timing."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from soak.deadline import Deadline
from tests.telegram.fake_bot_api import FakeBotAPI

# The longest a person waits for any sign of an answer before doing something else.
PATIENCE = 8.0
# Probes: commands only a person's own typing starts (no button or flow leads to
# them), so an onboarded person gets exactly one answer opening with the flow's first
# words per command typed: a lost update or one handled twice shows in the count.
PROBES = ("about", "privacy")
# A crisis signal, typed rarely: the guide must answer with the crisis flow first.
SAFETY_FLOWS = frozenset(
    {"q", "danger", "unsafe", "crisis", "crisis_check", "crisis_again", "screen", "said"}
)
SCHEDULING = ("pause", "space", "talk", "checkin")
CRISIS_TEXT = "i want to end my life tonight"
EMOJI = "🌊💙🫶🏽"


@dataclass
class Activity:
    """What the fake did per chat and per callback query, counted as it happens (the
    people wait on these)."""

    per_chat: Counter[int] = field(default_factory=Counter)
    answered: set[str] = field(default_factory=set)

    def on_call(self, call: Any, result: Any) -> None:
        chat = call.chat_id
        if chat is not None:
            self.per_chat[chat] += 1
        if call.method == "answerCallbackQuery":
            self.answered.add(str(call.params.get("callback_query_id")))


@dataclass
class Person:
    user_id: int
    fake: FakeBotAPI
    activity: Activity
    commands: tuple[str, ...]
    rng: random.Random
    # Onboarded before the run (consent, adult, screened, zone), so probes are exact.
    onboarded: bool
    # Only forgetters use /export and /forget (both answer outside the outbox, and
    # /forget deletes the rows the counts are checked against).
    forgetter: bool = False
    # What this person did, for the checks.
    typed: list[str] = field(default_factory=list)
    probes: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    # (time, update id, what) of every update this person queued.
    events: list[tuple[float, int, str]] = field(default_factory=list)
    forgot: int = 0
    crisis: int = 0
    _marks: int = 0
    # Actions left in which the person sticks to the flow they started (walking a
    # planning flow to its end takes many taps in a row).
    _focus: int = 0

    @property
    def chat_id(self) -> int:
        return self.user_id

    def marker(self) -> str:
        """A word only this person ever types: finding it in another chat, a log or
        the database after its step is over is a violation."""
        self._marks += 1
        return f"soakword{self.user_id}x{self._marks}"

    # ------------------------------------------------------------------ what the chat shows

    def keyboards(self) -> list[tuple[int, list[str], list[str]]]:
        """(message id, callback data, labels) of the chat's messages with buttons,
        oldest first."""
        out = []
        for message in self.fake.bot_messages(self.chat_id):
            rows = message.get("reply_markup", {}).get("inline_keyboard", [])
            buttons = [b for row in rows for b in row if "callback_data" in b]
            if buttons:
                out.append(
                    (
                        message["message_id"],
                        [b["callback_data"] for b in buttons],
                        [b["text"] for b in buttons],
                    )
                )
        return out

    def any_message_id(self) -> int | None:
        messages = self.fake.bot_messages(self.chat_id)
        return self.rng.choice(messages)["message_id"] if messages else None

    # ------------------------------------------------------------------ acting

    async def live(self, until: Deadline, others: list[Person]) -> None:
        # Everyone starts with something that plans a message for later.
        await self.command(planning=True)
        self.actions["command"] += 1
        while not until.passed():
            kind = await self.act(others)
            self.actions[kind] += 1
            if kind == "idle":
                await asyncio.sleep(self.rng.uniform(2.0, 12.0))
            else:
                await asyncio.sleep(self.rng.uniform(0.2, 1.5))

    async def act(self, others: list[Person]) -> str:
        keyboards = self.keyboards()
        current = keyboards[-1] if keyboards else None
        roll = self.rng.random()
        if current is None and roll < 0.4:
            # Between flows people go quiet for a while: follow-ups come then.
            return "idle"
        if current is not None and self._focus > 0:
            self._focus -= 1
            if roll < 0.92:
                message_id, data, _ = current
                await self.press(message_id, self.pick(data))
                return "press"
        if current is not None and roll < 0.70:
            message_id, data, _ = current
            await self.press(message_id, self.pick(data))
            return "press"
        if current is not None and roll < 0.75:
            _, _, labels = current
            await self.say(self.rng.choice(labels))
            return "typed label"
        if roll < 0.79 and len(keyboards) > 1:
            message_id, data, _ = self.rng.choice(keyboards[:-1])
            await self.press(message_id, self.rng.choice(data))
            return "stale press"
        if roll < 0.83:
            await self.forged(others)
            return "forged press"
        if roll < 0.90:
            await self.say(self.free_text())
            return "text"
        await self.command()
        return "command"

    def pick(self, data: list[str]) -> str:
        """A button to press. At a safety question most people answer that they are
        safe (otherwise nearly everyone ends up held back from the planning flows
        the soak needs); one time in five they pick any answer."""
        safe = [d for d in data if d.split(":")[0] in SAFETY_FLOWS and _safe_answer(d)]
        if safe and self.rng.random() < 0.8:
            return self.rng.choice(safe)
        return self.rng.choice(data)

    def free_text(self) -> str:
        pick = self.rng.random()
        if pick < 0.25:
            return str(self.rng.randint(0, 10))
        if pick < 0.35:
            return "   "
        if pick < 0.45:
            return EMOJI * self.rng.randint(1, 40)
        if pick < 0.55:
            return f"{self.marker()} " + ("so much to say " * 200)
        if pick < 0.565:
            self.crisis += 1
            return CRISIS_TEXT
        return f"{self.marker()} I think it was about the dishes {EMOJI[0]}"

    async def command(self, *, planning: bool = False) -> None:
        name = self.rng.choice(self.commands)
        if planning or self.rng.random() < 0.5:
            # Mostly the flows that plan something for later.
            name = self.rng.choice([c for c in SCHEDULING if c in self.commands])
            self._focus = 12
        if self.onboarded and not planning and self.rng.random() < 0.2:
            name = self.rng.choice(PROBES)
        if self.forgetter and not planning and self.rng.random() < 0.15:
            name = self.rng.choice(("export", "forget"))
        if name in PROBES and self.onboarded:
            self.probes[name] += 1
        if name == "forget":
            self.forgot += 1
        extra = ""
        if name == "stop" and self.rng.random() < 0.5:
            extra = " checkins"
        await self.say(f"/{name}{extra}")

    async def forged(self, others: list[Person]) -> None:
        message_id = self.any_message_id()
        if message_id is None:
            await self.command()
            return
        pick = self.rng.random()
        if pick < 0.3:
            data = f"pause:ground:done:{self.rng.randint(0, 36**7 - 1):x}"[:64]
        elif pick < 0.5:
            data = "".join(self.rng.choice("abc:xyz019/") for _ in range(self.rng.randint(1, 64)))
        elif pick < 0.7:
            data = "/cycle"  # a command's payload, as the idle buttons carry
        else:
            # Someone else's button, pressed here.
            theirs = [k for other in others if other is not self for k in other.keyboards()]
            data = self.rng.choice(self.rng.choice(theirs)[1]) if theirs else "x:y:z:1"
        await self.press(message_id, data)

    async def say(self, text: str) -> None:
        self.typed.append(text)
        before = self.activity.per_chat[self.chat_id]
        update_id = self.fake.push_message(self.user_id, text)
        self.events.append((time.monotonic(), update_id, text[:40]))
        await self._wait(lambda: self.activity.per_chat[self.chat_id] > before)

    async def press(self, message_id: int, data: str) -> None:
        before = self.activity.per_chat[self.chat_id]
        update = self.fake.callback_update(self.user_id, message_id, data)
        query = update["callback_query"]["id"]
        update_id = self.fake.push_update(update)
        self.events.append((time.monotonic(), update_id, f"press {data}"))
        await self._wait(
            lambda: query in self.activity.answered or self.activity.per_chat[self.chat_id] > before
        )

    async def _wait(self, check: Any) -> None:
        with contextlib.suppress(TimeoutError):
            await self.fake.wait_for(check, within=PATIENCE)


def _safe_answer(data: str) -> bool:
    parts = data.split(":")
    # flow:step:option:turn, or the listener's own q:answer:turn and said:intent.
    option = parts[2] if len(parts) > 3 else parts[1] if len(parts) > 1 else data
    return option in {"no", "safe", "not_now", "ok", "fine", "wrong", "pause"} or option.startswith(
        ("no", "safe")
    )
