"""A scripted journal: rows as the flows write them, at times chosen by hand, so the
tests can work out every figure themselves."""

from __future__ import annotations

from datetime import UTC, datetime

from dialogs.store import JournalEntry

# A Monday. In November London is on GMT, so local times equal UTC here.
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def rating(when: datetime, flow: str, step: str, value: int) -> JournalEntry:
    return JournalEntry(when, flow, step, "rating", str(value))


def choice(when: datetime, flow: str, step: str, option: str) -> JournalEntry:
    return JournalEntry(when, flow, step, "choice", option)


def two_pauses() -> list[JournalEntry]:
    return [
        rating(at(24, 19), "pause", "rate", 9),
        rating(at(24, 19, 3), "pause", "breathe_again", 4),
        rating(at(26, 8), "pause", "rate", 6),
    ]


def three_weeks() -> list[JournalEntry]:
    """Five pauses over three weeks, with follow-ups, space and check-ins."""
    rows = [
        # Week of 16 Nov. Pause A: 8, then 6, then 3 half an hour after.
        rating(at(16, 20), "pause", "rate", 8),
        rating(at(16, 20, 5), "pause", "breathe_again", 6),
        rating(at(16, 20, 30), "followup", "rerate", 3),
        choice(at(16, 20, 31), "followup", "helped", "breathing"),
        rating(at(17, 9), "checkin", "settled", 6),
        # Pause B: 6, then 4 an hour later (never down to 3).
        rating(at(18, 21), "pause", "rate", 6),
        # Typed text at the rating step journals only an intent label: not a pause.
        JournalEntry(at(18, 21, 1), "pause", "rate", "intent", "pause:0.80"),
        rating(at(18, 22), "followup", "rerate", 4),
        choice(at(18, 22, 1), "followup", "helped", "moving"),
        # Space, kept: back 4 minutes after the promised 19:01.
        choice(at(20, 18), "space", "when", "in_1h"),
        choice(at(20, 18, 1), "space", "offer", "yes"),
        rating(at(20, 19, 5), "space_return", "settled", 6),
        # Space, not kept: promised 10:32, back at 11:30.
        choice(at(21, 10), "space", "when", "in_30m"),
        choice(at(21, 10, 2), "space", "offer", "yes"),
        rating(at(21, 11, 30), "space_return", "settled", 5),
        # Space, kept: promised 22:21 falls in quiet hours, so the reminder came at
        # 08:00, and was answered at 08:10.
        choice(at(22, 21, 50), "space", "when", "in_30m"),
        choice(at(22, 21, 51), "space", "offer", "yes"),
        rating(at(23, 8, 10), "space_return", "settled", 7),
        # Week of 23 Nov. Pause C: 9, then 2 three minutes later; a re-rating 25
        # hours later is outside the pause's day and does not count.
        rating(at(24, 9), "checkin", "settled", 4),
        rating(at(24, 19), "pause", "rate", 9),
        rating(at(24, 19, 3), "pause", "breathe_again", 2),
        rating(at(25, 20), "followup", "rerate", 1),
        choice(at(25, 20, 1), "followup", "helped", "breathing"),
        # Pause D: already calm (2); no later rating.
        rating(at(26, 8), "pause", "rate", 2),
        # Space, kept: "this evening" means 20:00; answered at 20:20.
        choice(at(27, 15), "space", "when", "evening"),
        choice(at(27, 15, 1), "space", "offer", "yes"),
        rating(at(27, 20, 20), "space_return", "settled", 8),
        # Space without a reminder: nothing to measure.
        choice(at(28, 12), "space", "when", "in_1h"),
        choice(at(28, 12, 1), "space", "offer", "no"),
        # Week of 30 Nov. Pause E: 7, then 3 an hour later; "nothing" helped.
        rating(at(30, 9), "pause", "rate", 7),
        rating(at(30, 10), "followup", "rerate", 3),
        choice(at(30, 10, 1), "followup", "helped", "nothing"),
        # Space whose promised time (12:21) is still to come.
        choice(at(30, 11, 50), "space", "when", "in_30m"),
        choice(at(30, 11, 51), "space", "offer", "yes"),
    ]
    return sorted(rows, key=lambda e: e.at)
