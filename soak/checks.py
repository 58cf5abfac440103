"""The verdict: every promise of docs/reliability.md, checked at the end of a run from
the database and the fake's record of every call. Each check returns violations
(one line each, naming the person by Telegram id and the rows by id); figures go to
the table.

Definitions used here:
- A *post* is a message the fake took into a chat (`records.posts`).
- The *crash window* of a kill: outbox rows still pending when the process died whose
  text the chat had already received (the platform took them; the mark was never
  written). Each may arrive twice. A *lost answer* (the fake took a message and
  dropped the connection before answering) may also bring one duplicate.
- *Accounted* chats: those that never received a file and never had their data
  deleted by /forget. Only there does every post match an outbox row, so the exact
  counts (duplicates, lost rows) are checked there; every other check covers all.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from dialogs.content import Content
from dialogs.payloads import decode_payload
from soak.people import PROBES, Person
from soak.records import POSTS, Database, Post, posts, when
from soak.stalls import THRESHOLD, Stall
from storage.outbound_rows import MOVED_ON
from tests.telegram.fake_bot_api import Chaos, FakeBotAPI

TERMINAL = {"sent", "missed", "cancelled", "superseded"}


@dataclass
class Kill:
    at: float
    in_window: bool  # the kill waited for a message Telegram took and did not answer
    worker: int = 0  # which worker (with several)
    # Per chat: texts of pending rows the chat had already received (the crash window).
    window: dict[int, list[str]] = field(default_factory=dict)


@dataclass
class Verdict:
    figures: dict[str, int | str] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def add(self, check: str, message: str) -> None:
        self.violations.append(f"[{check}] {message}")


def crash_window(
    owed: dict[int, list[tuple[datetime, str]]],
    shown: dict[int, list[Post]],
    wall_to_monotonic: Callable[[float], float],
) -> dict[int, list[str]]:
    """A kill's crash window: of the rows the process still owed when it died
    (`owed`, per chat (written at, text), read right after the kill: a live worker
    takes them over once the dead one's liveness lease lapses, and may have sent
    them by the time slow requests have landed), those whose text the chat had
    received by now (`shown`). A row matches a post with its text that arrived
    after the row was written (less a second for the clocks), each post one row."""
    window: dict[int, list[str]] = {}
    for chat, pending in owed.items():
        taken = list(shown.get(chat, []))
        for created, text in pending:
            after = wall_to_monotonic(created.timestamp()) - 1.0
            match = next(
                (p for p in taken if p.text.strip() == text.strip() and p.at >= after), None
            )
            if match is not None:
                taken.remove(match)
                window.setdefault(chat, []).append(text)
    return window


def first_words(text: str, n: int = 40) -> str:
    """A text's opening up to its first template variable, as it shows in a post."""
    return text.split("{", 1)[0].strip()[:n]


def step_texts(content: Content) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for flow_id, flow in content.flows.items():
        for step in flow.steps:
            raw = getattr(step, "text", None)
            for text in [raw] if isinstance(raw, str) else list(raw or []):
                out.setdefault(flow_id, []).append(str(text))
    return out


def openings(content: Content, flow_ids: set[str]) -> dict[str, str]:
    """The first words of each flow's first text, where no other flow says them."""
    texts = step_texts(content)
    out = {}
    for flow_id in sorted(flow_ids):
        flow = content.flows[flow_id]
        raw = getattr(flow.steps[0], "text", None)
        first = raw if isinstance(raw, str) else (list(raw or []) or [""])[0]
        words = first_words(str(first))
        elsewhere = [f for f, ts in texts.items() if f != flow_id and any(words in t for t in ts)]
        if len(words) >= 12 and not elsewhere:
            out[flow_id] = words
    return out


def scheduled_flows(content: Content) -> set[str]:
    flows = {"checkin_due"}
    for flow in content.flows.values():
        for step in flow.steps:
            target = getattr(step, "flow", None)
            if getattr(step, "kind", "") == "schedule" and isinstance(target, str):
                flows.add(target)
    return flows


def check(
    db: Database,
    fake: FakeBotAPI,
    people: list[Person],
    kills: list[Kill],
    content: Content,
    chaos: Chaos | None,
    *,
    ended: datetime,
    grace: timedelta,
    logs: str,
    not_yet_due: set[int] = frozenset(),  # type: ignore[assignment]
    receivers: set[int] = frozenset(),  # type: ignore[assignment]
) -> Verdict:
    """`receivers`: chats of people who only receive (the wave), besides `people`."""
    v = Verdict()
    by_chat = posts(fake)
    users = {int(r["platform_user_id"]): r["id"] for r in db.rows("select * from users")}
    forget_done = first_words(
        step_texts(content)["forget"][1] if len(step_texts(content)["forget"]) > 1 else ""
    )
    unaccounted = {
        chat
        for chat, ps in by_chat.items()
        if any(p.method == "sendDocument" for p in ps)
        or (forget_done and any(forget_done in p.text for p in ps))
    }
    onboarded = {p.chat_id for p in people if p.onboarded}
    followups(db, chaos, v, users, by_chat, unaccounted, onboarded, kills, content, ended, grace)
    # Planned for later, and cancelled by the /stop everyone sends at the end.
    later = len(
        [
            r
            for r in db.rows("select id, status from followups")
            if r["id"] in not_yet_due and r["status"] == "cancelled"
        ]
    )
    v.figures["not yet due"] = int(v.figures["not yet due"]) + later
    v.figures["cancelled"] = int(v.figures["cancelled"]) - later
    outbox(db, v, users)
    counts(db, fake, chaos, v, people, users, by_chat, unaccounted, kills, content)
    order(v, by_chat, forget_done)
    addressing(fake, v, people, by_chat, receivers)
    privacy_in_logs(v, people, by_chat, logs)
    return v


def followups(
    db: Database,
    chaos: Chaos | None,
    v: Verdict,
    users: dict[int, int],
    by_chat: dict[int, list[Post]],
    unaccounted: set[int],
    onboarded: set[int],
    kills: list[Kill],
    content: Content,
    ended: datetime,
    grace: timedelta,
) -> None:
    """Each follow-up ends sent, missed, cancelled or superseded; none is left
    claimed or overdue; a sent one's messages went out (or were dropped, with the
    reason recorded); in accounted chats its opening arrived exactly once per sent
    follow-up, besides a duplicate only inside a crash window or after a lost answer."""
    all_rows = db.rows("select * from followups")
    status = Counter(r["status"] for r in all_rows)
    v.figures["follow-ups"] = len(all_rows)
    v.figures["sent"] = status["sent"]
    v.figures["missed"] = status["missed"]
    v.figures["cancelled"] = status["cancelled"]
    v.figures["not yet due"] = 0
    for r in all_rows:
        due = when(r["due_at"])
        assert due is not None
        if r["status"] in ("claimed", "delivering"):
            v.add("follow-ups", f"follow-up {r['id']} ({r['flow_id']}) left {r['status']}")
        elif r["status"] == "failed":
            v.add("follow-ups", f"follow-up {r['id']} ({r['flow_id']}) failed in the engine")
        elif r["status"] == "pending":
            if due < ended - grace:
                v.add(
                    "follow-ups",
                    f"follow-up {r['id']} ({r['flow_id']}) due {due:%H:%M:%S}, never handled",
                )
            else:
                v.figures["not yet due"] = int(v.figures["not yet due"]) + 1
        elif r["status"] not in TERMINAL:
            v.add("follow-ups", f"follow-up {r['id']} has unknown status {r['status']}")
    dropped: Counter[str] = Counter()
    delivered: Counter[tuple[int, str]] = Counter()
    chat_of = {uid: chat for chat, uid in users.items()}
    for r in all_rows:
        if r["status"] != "sent":
            continue
        owed = db.rows(
            "select status, reason from outbound where user_id = :user and kind = 'scheduled' "
            "and created_at = :at order by seq",
            user=r["user_id"],
            at=r["sent_at"],
        )
        if not owed:
            v.add("follow-ups", f"follow-up {r['id']} marked sent with no message owed")
            continue
        first = owed[0]
        if first["status"] == "sent":
            delivered[(chat_of.get(r["user_id"], 0), r["flow_id"])] += 1
        elif first["status"] in ("dropped", "superseded") and first["reason"]:
            dropped[f"{first['status']}: {first['reason']}"] += 1
        else:
            v.add(
                "follow-ups",
                f"follow-up {r['id']}: its message is {first['status']} "
                f"(reason {first['reason']!r}) at the end",
            )
    v.figures["follow-up messages dropped"] = (
        ", ".join(f"{n} {why}" for why, n in sorted(dropped.items())) or "0"
    )
    opening = openings(content, scheduled_flows(content))
    for chat, ps in by_chat.items():
        # Someone who met the guide during the run may meet a gate first (the safety
        # screen before a check-in): the follow-up's messages are the gate's then.
        if chat in unaccounted or chat not in onboarded:
            continue
        lost = lost_posts(chaos)[chat]
        for flow_id, words in opening.items():
            window = sum(1 for k in kills for t in k.window.get(chat, []) if words in t)
            problem = opening_arrivals(ps, words, delivered[(chat, flow_id)], window + lost)
            if problem:
                v.add("follow-ups", f"chat {chat}: {problem} ({flow_id})")


def opening_arrivals(ps: list[Post], words: str, owed: int, may_repeat: int) -> str | None:
    """Whether a follow-up flow's opening arrived once per follow-up sent; what is
    wrong if not. An opening with buttons carries the conversation's turn: a question
    asked again after an answer the guide did not catch repeats text and buttons, and
    so does a duplicate, while a follow-up run twice carries a new turn, so distinct
    posts count, exactly. One without buttons (talk_reminder's) is the same text each
    time it is sent: every post counts, and up to `may_repeat` of them (the chat's
    crash windows holding it, lost answers) may be duplicates."""
    with_words = [p for p in ps if words in p.text]
    if any(p.data for p in with_words):
        arrived = len({p.key for p in with_words})
        most = owed
    else:
        arrived = len(with_words)
        most = owed + may_repeat
    if owed <= arrived <= most:
        return None
    return f"{owed} follow-up(s) marked sent, {arrived} arrived"


def lost_posts(chaos: Chaos | None) -> Counter[int | None]:
    """Per chat, the messages the fake took and whose answer it then lost."""
    return Counter(c.chat_id for c in (chaos.lost if chaos else []) if c.method in POSTS)


def outbox(db: Database, v: Verdict, users: dict[int, int]) -> None:
    """No row left pending; each row addressed to its owner's own private chat; in
    each chat, rows were accepted in their order (marks never go back in time)."""
    all_rows = db.rows("select * from outbound order by platform, chat_id, seq")
    owner_of = {uid: str(chat) for chat, uid in users.items()}
    status = Counter(r["status"] for r in all_rows)
    v.figures["outbox rows"] = len(all_rows)
    reasons = Counter(
        f"{r['status']}: {r['reason']}"
        for r in all_rows
        if r["status"] in ("dropped", "superseded")
    )
    v.figures["outbox dropped/superseded"] = (
        ", ".join(f"{n} {why}" for why, n in sorted(reasons.items())) or "0"
    )
    if status["pending"]:
        v.add("outbox", f"{status['pending']} row(s) still pending at the end")
    last: dict[str, tuple[int, datetime]] = {}
    for r in all_rows:
        if r["private"] and not (
            r["chat_id"] == r["recipient"] == owner_of.get(r["user_id"], r["chat_id"])
        ):
            v.add(
                "addressing",
                f"outbox row {r['id']} of user {owner_of.get(r['user_id'])} addressed to "
                f"chat {r['chat_id']} / recipient {r['recipient']}",
            )
        if r["status"] != "sent":
            continue
        sent = when(r["sent_at"])
        assert sent is not None
        before = last.get(r["chat_id"])
        if before is not None and sent < before[1]:
            v.add(
                "order",
                f"chat {r['chat_id']}: row seq {r['seq']} accepted before seq {before[0]}",
            )
        last[r["chat_id"]] = (r["seq"], sent)


def counts(
    db: Database,
    fake: FakeBotAPI,
    chaos: Chaos | None,
    v: Verdict,
    people: list[Person],
    users: dict[int, int],
    by_chat: dict[int, list[Post]],
    unaccounted: set[int],
    kills: list[Kill],
    content: Content,
) -> None:
    """Exactly once: in an accounted chat the posts are the rows marked sent, plus the
    messages never stored (an apology after a failed turn, the flood notice), plus
    duplicates only inside crash windows or after lost answers. And each probe
    command typed got exactly one answer: an update lost or handled twice shows."""
    sent_rows = Counter(
        int(r["chat_id"]) for r in db.rows("select chat_id from outbound where status = 'sent'")
    )
    copy = content.copy
    unstored = [first_words(t) for t in (copy.error_apology, copy.slow_down)]
    lost = lost_posts(chaos)
    duplicates = 0
    for chat, ps in by_chat.items():
        if chat in unaccounted:
            continue
        # A picture goes as a post of its own after its message's words (one row:
        # Telegram's sendPhoto carries no buttons), so it is not a row's post.
        extra = sum(
            1 for p in ps if p.method == "sendPhoto" or any(w and w in p.text for w in unstored)
        )
        window = sum(len(k.window.get(chat, [])) for k in kills)
        dup = len(ps) - extra - sent_rows[chat]
        if dup < 0:
            v.add("exactly once", f"chat {chat}: {-dup} row(s) marked sent never arrived")
        elif dup > window + lost[chat]:
            v.add(
                "exactly once",
                f"chat {chat}: {dup} duplicate(s), only {window} row(s) in crash windows "
                f"and {lost[chat]} lost answer(s)",
            )
        duplicates += max(dup, 0)
    v.figures["duplicates"] = duplicates
    v.figures["in crash windows"] = sum(len(t) for k in kills for t in k.window.values())
    probe_words = openings(content, set(PROBES))
    # A reply sent again after a crash or a failure once the person's conversation is
    # past its turn is recorded superseded instead ("conversation moved on":
    # docs/reliability.md): the person typed on before it came. Such a row may be a
    # probe's answer, so it may stand for one answer fewer; it holds no text to tell.
    moved_on = Counter(
        int(r["chat_id"])
        for r in db.rows(
            "select chat_id from outbound where status = 'superseded'"
            f" and reason = '{MOVED_ON}' and kind = 'reply'"
        )
    )
    excused = 0
    for person in people:
        for name, typed in person.probes.items():
            words = probe_words.get(name)
            if words is None:
                continue
            ps = by_chat.get(person.chat_id, [])
            answers = sum(1 for p in ps if words in p.text)
            window = sum(1 for k in kills for t in k.window.get(person.chat_id, []) if words in t)
            ok, short = probe_answered(
                typed, answers, window + lost[person.chat_id], moved_on[person.chat_id]
            )
            moved_on[person.chat_id] -= short
            excused += short
            if not ok:
                v.add(
                    "events",
                    f"chat {person.chat_id}: /{name} typed {typed} times, answered {answers}",
                )
    v.figures["probe answers superseded, the person having moved on"] = excused
    v.figures["updates fetched again"] = sum(1 for n in fake.handed_out.values() if n > 1)
    # Nothing lost: every update a person sent was handled (claimed in the turn's
    # transaction). /forget deletes a person's claims, so only accounted chats.
    claimed = {r["event_key"] for r in db.rows("select event_key from processed_events")}
    for person in people:
        if person.chat_id in unaccounted:
            continue
        lost_updates = [
            (update_id, what)
            for _, update_id, what in person.events
            if f"telegram:{update_id}" not in claimed
        ]
        for update_id, what in lost_updates:
            fetched = fake.handed_out[update_id]
            v.add(
                "events",
                f"chat {person.chat_id}: update {update_id} ({_kind(what)}, fetched {fetched} "
                "time(s)) was never handled",
            )


def order(v: Verdict, by_chat: dict[int, list[Post]], forget_done: str) -> None:
    """Buttons carry the conversation's turn, which only grows between forgets: in each
    chat the turns of the posts never go back, except for a post repeating an
    earlier one exactly (a duplicate, counted above, or a question asked again).
    After /forget's last words (`forget_done`) the turns start again."""
    for chat, ps in by_chat.items():
        seen: set[tuple[str, tuple[str, ...]]] = set()
        high = -1
        for p in ps:
            if forget_done and forget_done in p.text:
                # A fresh conversation: its first questions repeat the first ones of
                # the last (the same words, the same turns), so they look seen.
                high = -1
                seen.clear()
                continue
            turns = [t.turn for t in (decode_payload(d) for d in p.data) if t is not None]
            if turns:
                turn = max(turns)
                if turn < high and p.key not in seen:
                    v.add(
                        "order", f"chat {chat}: a question of turn {turn} arrived after turn {high}"
                    )
                high = max(high, turn)
            seen.add(p.key)


def addressing(
    fake: FakeBotAPI,
    v: Verdict,
    people: list[Person],
    by_chat: dict[int, list[Post]],
    receivers: set[int],
) -> None:
    """Nothing reaches a chat that is not a simulated person's; no word a person typed
    shows in anyone else's chat."""
    chats = {p.chat_id for p in people} | receivers
    for call in fake.calls:
        if call.chat_id is not None and call.chat_id not in chats:
            v.add("addressing", f"{call.method} to chat {call.chat_id}, nobody's chat")
    for person in people:
        for marker in _markers(person):
            for chat, ps in by_chat.items():
                if chat != person.chat_id and any(marker in p.text for p in ps):
                    v.add("addressing", f"chat {chat} shows a word chat {person.chat_id} typed")


def privacy_in_logs(
    v: Verdict, people: list[Person], by_chat: dict[int, list[Post]], logs: str
) -> None:
    """No message text in the guide's logs: no word a person typed, no text the guide
    sent (long enough to be a sentence of its own)."""
    for person in people:
        for marker in _markers(person):
            if marker in logs:
                v.add("log privacy", f"a word chat {person.chat_id} typed is in the logs")
    said = {line.strip() for ps in by_chat.values() for p in ps for line in p.text.split("\n")}
    for line in sorted(s for s in said if len(s) >= 30):
        if line in logs:
            v.add("log privacy", f"the guide's text {line[:30]!r}... is in the logs")


def probe_answered(typed: int, answers: int, extra: int, moved_on: int) -> tuple[bool, int]:
    """Whether a command typed `typed` times got the right number of `answers`: at
    least one each, bar answers superseded once the person moved on (at most
    `moved_on`, the chat's such rows not yet used for another command), and at most
    `extra` more (rows in crash windows, lost answers). Also how many of `moved_on`
    it used."""
    short = min(max(typed - answers, 0), moved_on)
    return typed <= answers + short and answers <= typed + extra, short


def most_in_any_second(times: list[float]) -> int:
    """The most moments in any one-second window (sorted or not)."""
    ordered = sorted(times)
    most = first = 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


# How long after a stall's end the calls the kernel queued during it may still be
# stamped: the loop takes them within a few turns once it runs again, and a turn held
# longer than the monitor's threshold is a stall of its own (joined to this one). On a
# loaded machine a test saw one stamped 69 ms after, so twice the threshold.
STAMP_SLACK = 2 * THRESHOLD


@dataclass(frozen=True, slots=True)
class Second:
    """The one-second window at the fake from `start`: how many messages were stamped
    in it, and the most it may hold (`widened`: seconds it was widened back by for a
    stall; 0 when judged at the strict rate)."""

    start: float
    count: int
    allowed: int
    widened: float


def seconds_judged(
    times: list[float], stalls: Sequence[Stall], rate: int, slack: float = STAMP_SLACK
) -> list[Second]:
    """Each one-second window from a message's stamp, judged against the cap, allowing
    for the harness's loop stalls (soak/stalls.py).

    The fake stamps a call when its handler runs. While the loop stands still the
    kernel queues the calls, and they are stamped together once it runs again: a call
    stamped in a window may have arrived earlier, at any moment of a stall whose end
    (plus `slack`) falls in or just before the window. So a window touched by such a
    stall that began before it is judged as the span its messages may have arrived
    in: from the stall's start (the earliest, if several) to the window's end, 1 +
    `widened` seconds, which may hold floor(rate x (1 + widened)). The guide keeps the
    cap by pacing (its shared line hands out moments at least 1/rate apart, with no
    burst: storage/send_budget.py), so over any span at least a second long it sends at
    most the rate times the span; one second is the strict check, a widened window
    the same rule over its longer span. The widening is never more than the stall's
    length plus `slack` (less when the window starts inside the stall), and a window
    holding a whole stall is not widened: what arrived during it was stamped inside
    the window anyway. Windows no stall touches keep the strict rate, so a burst over
    the cap with no stall fails, and so does one bigger than a stall can explain.
    Stalls closer together than `slack` are taken as one (the queued calls of the
    first may be stamped after the second).

    Only windows from a message's stamp are judged: a window starting between two
    stamps holds no more messages than the one from the next stamp, and a stall
    touching it but not that one would have to hold stamps itself."""
    ordered = sorted(times)
    spans = joined(stalls, slack)
    judged = []
    end = 0
    for first, at in enumerate(ordered):
        while end < len(ordered) and ordered[end] < at + 1.0:
            end += 1
        back = min(
            (s.start for s in spans if s.start < at + 1.0 and s.end + slack >= at), default=at
        )
        widened = max(0.0, at - back)
        allowed = math.floor(rate * (1.0 + widened) + 1e-9)
        judged.append(Second(at, end - first, allowed, widened))
    return judged


def joined(stalls: Sequence[Stall], slack: float) -> list[Stall]:
    """The stalls in order, those less than `slack` apart joined into one."""
    out: list[Stall] = []
    for stall in sorted(stalls, key=lambda s: s.start):
        if out and stall.start - out[-1].end <= slack:
            out[-1] = Stall(out[-1].start, max(out[-1].end, stall.end))
        else:
            out.append(Stall(stall.start, stall.end))
    return out


def cap(
    v: Verdict,
    fake: FakeBotAPI,
    wave_due: dict[int, datetime],
    rate: int,
    clock_offset: float,
    stalls: Sequence[Stall] = (),
) -> None:
    """The overall cap at the fake, across every worker: the wave's messages (to
    people who only receive, so each is a scheduled message, which the cap governs;
    replies are charged to it but never held) never more than `rate` in any one
    second, a second after one of the harness's loop `stalls` judged as the longer
    span its messages may have arrived in (`seconds_judged`). And, as figures, how
    late each wave follow-up's first message arrived after it was due
    (`clock_offset`: wall time less the fake's monotonic stamps)."""
    by_chat = posts(fake)
    times = [p.at for chat in wave_due for p in by_chat.get(chat, [])]
    judged = seconds_judged(times, stalls, rate)
    v.figures["wave busiest second"] = max((s.count for s in judged), default=0)
    widened = [s for s in judged if s.widened > 0]
    v.figures["wave seconds widened by a stall"] = f"{len(widened)} of {len(judged)}" + (
        f", at most {max(s.allowed for s in widened)} allowed" if widened else ""
    )
    over = [s for s in judged if s.count > s.allowed]
    if over:
        worst = max(over, key=lambda s: (s.count - s.allowed, s.count))
        if worst.widened:
            v.add(
                "cap",
                f"{worst.count} wave messages in one second at the fake, over the "
                f"{worst.allowed} a loop stall {worst.widened * 1000:.0f} ms before it can "
                f"explain (the cap is {rate})",
            )
        else:
            v.add(
                "cap",
                f"{worst.count} wave messages in one second at the fake, over the cap of {rate}",
            )
    late = sorted(
        by_chat[chat][0].at + clock_offset - due.timestamp()
        for chat, due in wave_due.items()
        if by_chat.get(chat)
    )
    v.figures["wave"] = f"{len(wave_due)} due, {len(late)} reached, {len(times)} messages"
    if late:
        p50 = late[len(late) // 2]
        p99 = late[min(len(late) - 1, int(len(late) * 0.99))]
        v.figures["wave lateness p50/p99/max"] = f"{p50:.1f} / {p99:.1f} / {late[-1]:.1f} s"


def markers_in_rows(people: list[Person], db: Database, tables: list[str]) -> list[str]:
    """Words people typed still readable in any row of any table (PostgreSQL: its files
    are the server's, so the rows are read instead)."""
    found = []
    stored = "\n".join(db.texts_of_every_row(tables))
    for person in people:
        for marker in _markers(person):
            if marker in stored:
                found.append(f"[stored data] a word chat {person.chat_id} typed is in the database")
    return found


def markers_in_files(people: list[Person], files: list[Path]) -> list[str]:
    """Words people typed still readable in any file of the database."""
    found = []
    blobs = [f.read_bytes() for f in files if f.exists()]
    for person in people:
        for marker in _markers(person):
            if any(marker.encode() in blob for blob in blobs):
                found.append(
                    f"[stored data] a word chat {person.chat_id} typed is in the database files"
                )
    return found


def _kind(what: str) -> str:
    if what.startswith("press "):
        return "a press"
    return f"command {what.split()[0]}" if what.startswith("/") else "typed text"


def _markers(person: Person) -> list[str]:
    return [w for t in person.typed for w in t.split() if w.startswith("soakword")]


__all__ = [
    "Kill",
    "Verdict",
    "cap",
    "check",
    "crash_window",
    "json",
    "markers_in_files",
    "markers_in_rows",
    "seconds_judged",
]
