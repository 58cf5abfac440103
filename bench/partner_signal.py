"""How long a partner signal takes from the tap to the partner's chat, against the
sender's own reply to the same tap.

Pairs of people, each already linked, on Telegram: the real python-telegram-bot
polling the fake Bot API (`tests/telegram/fake_bot_api.py`, in this process), the
real `TelegramAdapter`, engine, content and outbox, SQLite on a file (WAL). The sender
opens /pause, taps "Done", then "Send it" on the offer; the partner's quiet hours are
off. Measured from the callback update being queued in the fake to:
- the floor: the sender's own reply ("Sent.") arriving in the sender's chat, the
  least that tap can cost (the same update, the same transaction, the same outbox);
- the signal: "From your partner: ..." arriving in the partner's chat.
The goal is under 2 s at p99. Each pair signals once (the limits allow one an hour),
first one pair at a time, then `--concurrency` pairs at once. The Discord side of a
cross-platform link goes through the same `Delivery` (tests/discord_tests/
test_partner_link.py); simcord is a pytest plugin, so this bench stays on Telegram.

Run: `python -m bench.partner_signal` (about a minute; `--pairs 20` for a quick
run). Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bot.app import Guide, open_guide
from bot.config import Settings
from bot.telegram.adapter import TelegramAdapter
from dialogs.clock import SystemClock
from dialogs.link.store import LinkStatus
from dialogs.store import Profile, UserKey
from tests.telegram.fake_bot_api import DEFAULT_TOKEN, Call, FakeBotAPI

SENDERS = 1_000_000
PARTNERS = 2_000_000
SIGNAL = "From your partner:"
OWN = "Sent."


@dataclass
class Arrivals:
    """When each chat got the message it waits for (perf_counter seconds)."""

    seen: dict[tuple[int, str], float] = field(default_factory=dict)
    waiting: dict[tuple[int, str], asyncio.Event] = field(default_factory=dict)

    def on_call(self, call: Call, result: Any) -> None:
        if call.method != "sendMessage" or call.chat_id is None:
            return
        text = str(call.params.get("text", ""))
        for marker in (SIGNAL, OWN, "Want your partner"):
            if text.startswith(marker) or (marker == OWN and text == OWN):
                key = (call.chat_id, marker)
                self.seen[key] = time.perf_counter()
                event = self.waiting.get(key)
                if event is not None:
                    event.set()

    async def wait(self, chat: int, marker: str, within: float = 30.0) -> float:
        key = (chat, marker)
        if key not in self.seen:
            event = self.waiting.setdefault(key, asyncio.Event())
            await asyncio.wait_for(event.wait(), within)
        return self.seen[key]


async def _setup(pairs: int, folder: Path) -> tuple[FakeBotAPI, Guide, TelegramAdapter, Arrivals]:
    fake = FakeBotAPI()
    arrivals = Arrivals()
    fake.on_call = arrivals.on_call
    await fake.start()
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{folder / 'bench.db'}",
        telegram_bot_token=DEFAULT_TOKEN,
        telegram_api_base_url=fake.base_url,
        timezone="UTC",
        telegram_rate=10_000.0,
        telegram_rate_per_chat=10_000.0,
    )
    clock = SystemClock()
    guide = await open_guide(settings, clock)
    adapter = TelegramAdapter(guide, settings, clock=clock, poll_timeout=1)
    await guide.add_platform("telegram", adapter)
    await adapter.start()
    now = clock.now()
    # Consented, screened adults in UTC with no quiet hours (start = end), linked.
    person = Profile(
        consent_at=now,
        adult=True,
        country="US",
        zone="UTC",
        screened=True,
        session_started_at=now,
        last_active_at=now,
        reminded_at=now,
        quiet_start="00:00",
        quiet_end="00:00",
    )
    async with guide.store.session() as s:
        for n in range(pairs):
            sender = UserKey("telegram", str(SENDERS + n))
            partner = UserKey("telegram", str(PARTNERS + n))
            for user in (sender, partner):
                await s.save_profile(user, person)
            link = await s.create_link(sender, sender.user_id, f"bench-{n}", now)
            await s.update_link(
                replace(
                    link,
                    status=LinkStatus.ACTIVE,
                    partner=partner,
                    partner_chat=partner.user_id,
                    accepted_at=now,
                )
            )
    return fake, guide, adapter, arrivals


async def _one_pair(fake: FakeBotAPI, arrivals: Arrivals, n: int) -> tuple[float, float]:
    sender, partner = SENDERS + n, PARTNERS + n
    fake.push_message(sender, "/pause")
    await _wait_text(fake, sender, "Breathe in")
    message, data = _button(fake, sender, "Done")
    fake.push_callback(sender, message["message_id"], data)
    await arrivals.wait(sender, "Want your partner")
    message, data = _button(fake, sender, "Send it")
    tapped = time.perf_counter()
    fake.push_callback(sender, message["message_id"], data)
    own = await arrivals.wait(sender, OWN)
    signal = await arrivals.wait(partner, SIGNAL)
    return own - tapped, signal - tapped


async def _wait_text(fake: FakeBotAPI, chat: int, piece: str) -> None:
    await fake.wait_for(
        lambda: any(piece in m.get("text", "") for m in fake.bot_messages(chat)) or None,
        within=30.0,
    )


def _button(fake: FakeBotAPI, chat: int, label: str) -> tuple[dict[str, Any], str]:
    for message in reversed(fake.bot_messages(chat)):
        for row in message.get("reply_markup", {}).get("inline_keyboard", []):
            for button in row:
                if button["text"] == label:
                    return message, button["callback_data"]
    raise LookupError(f"no button {label!r} in chat {chat}")


async def run(pairs: int, concurrency: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        fake, guide, adapter, arrivals = await _setup(pairs * 2, Path(folder))
        try:
            # One pair at a time, then `concurrency` pairs at once, on fresh pairs.
            alone = [await _one_pair(fake, arrivals, n) for n in range(pairs)]
            gate = asyncio.Semaphore(concurrency)

            async def gated(n: int) -> tuple[float, float]:
                async with gate:
                    return await _one_pair(fake, arrivals, n)

            together = await asyncio.gather(*(gated(n) for n in range(pairs, pairs * 2)))
        finally:
            await adapter.stop()
            await guide.close()
            await fake.stop()
    results["own reply, one at a time (floor)"] = [own for own, _ in alone]
    results["partner signal, one at a time"] = [signal for _, signal in alone]
    results[f"own reply, {concurrency} at once (floor)"] = [own for own, _ in together]
    results[f"partner signal, {concurrency} at once"] = [signal for _, signal in together]
    return results


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.pairs, args.concurrency))
    print(f"# partner signal: tap to arrival, {args.pairs} pairs per row (goal: p99 < 2 s)\n")
    print("| measured | p50 ms | p99 ms | max ms | p50 / floor p50 |")
    print("|---|---:|---:|---:|---:|")
    names = list(results)
    for index, name in enumerate(names):
        values = results[name]
        floor = statistics.median(results[names[index - index % 2]])
        print(
            f"| {name} | {_pct(values, 50) * 1000:.0f} | {_pct(values, 99) * 1000:.0f} "
            f"| {max(values) * 1000:.0f} | {statistics.median(values) / floor:.2f} |"
        )
    worst = max(_pct(results[name], 99) for name in names if "signal" in name)
    print(f"\nworst signal p99: {worst * 1000:.0f} ms ({'within' if worst < 2 else 'OVER'} 2 s)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
