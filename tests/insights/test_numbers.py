"""The figures, from a scripted journal, against values worked out by hand."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, time, timedelta
from zoneinfo import ZoneInfo

from dialogs.insights.numbers import Week, compute
from dialogs.store import JournalEntry
from tests.insights.journal import NOW, at, choice, rating, three_weeks, two_pauses

LONDON = ZoneInfo("Europe/London")
QUIET = (time(22, 0), time(8, 0))


def test_pauses_before_after_and_settling() -> None:
    insights = compute(three_weeks(), NOW, LONDON, QUIET)
    found = [(p.at, p.before, p.after, p.settled_in) for p in insights.pauses]
    assert found == [
        (at(16, 20), 8, 3, timedelta(minutes=30)),
        (at(18, 21), 6, 4, None),
        (at(24, 19), 9, 2, timedelta(minutes=3)),
        (at(26, 8), 2, None, None),
        (at(30, 9), 7, 3, timedelta(hours=1)),
    ]
    # Before: 2 6 7 8 9. After: 2 3 3 4. Settling: 3, 30, 60 minutes.
    assert insights.before == 7
    assert insights.after == 3
    assert insights.settling == (timedelta(minutes=30), 3)


def test_weeks_are_local_mondays_with_their_middle_values() -> None:
    insights = compute(three_weeks(), NOW, LONDON, QUIET)
    assert insights.weeks == (
        Week(date(2026, 11, 16), 2, 7.0, 3.5),
        Week(date(2026, 11, 23), 2, 5.5, 2.0),
        Week(date(2026, 11, 30), 1, 7.0, 3.0),
    )
    assert not insights.early


def test_what_helped_space_kept_and_checkins() -> None:
    insights = compute(three_weeks(), NOW, LONDON, QUIET)
    assert insights.helped == (("breathing", 2), ("moving", 1))
    assert (insights.space_asked, insights.space_kept) == (4, 3)
    assert insights.checkins_answered == 2


def test_weeks_start_on_the_local_monday() -> None:
    # 20:00 UTC on Sunday 29 November is still Sunday in London, and already
    # Monday 30 November in Auckland.
    sunday_evening = at(29, 20)
    in_london = compute(two_pauses(), sunday_evening, LONDON, QUIET)
    in_auckland = compute(two_pauses(), sunday_evening, ZoneInfo("Pacific/Auckland"), QUIET)
    assert [w.start for w in in_london.weeks] == [date(2026, 11, 23)]
    assert [w.start for w in in_auckland.weeks] == [date(2026, 11, 23), date(2026, 11, 30)]
    assert [w.pauses for w in in_auckland.weeks] == [2, 0]


def test_two_pauses_are_too_early_for_a_trend() -> None:
    insights = compute(two_pauses(), NOW, LONDON, QUIET)
    assert len(insights.pauses) == 2
    assert insights.early


def test_no_journal_no_figures() -> None:
    insights = compute([], NOW, LONDON, QUIET)
    assert insights.pauses == () and insights.weeks == ()
    assert insights.before is None and insights.after is None and insights.settling is None
    assert not insights.has_anything


def test_weeks_stop_at_a_year() -> None:
    long_ago = [replace(e, at=e.at - timedelta(weeks=80)) for e in two_pauses()]
    insights = compute([*long_ago, *two_pauses()], NOW, LONDON, QUIET)
    assert len(insights.weeks) == 52
    assert insights.weeks[-1].start == date(2026, 11, 30)
    assert insights.weeks[0].start == date(2026, 11, 30) - timedelta(weeks=51)
    # The pauses themselves all count; only the chart's weeks are capped.
    assert len(insights.pauses) == 4


def test_a_trend_needs_five_pauses_and_three_weeks() -> None:
    from tests.insights.journal import rating

    # One pause a week for three weeks: weeks enough, pauses too few.
    three = [rating(at(day, 9), "pause", "rate", 6) for day in (16, 23, 30)]
    assert compute(three, NOW, LONDON, QUIET).early
    # Five pauses, all in the last two weeks: pauses enough, weeks too few.
    five = [rating(at(day, 9), "pause", "rate", 6) for day in (24, 25, 26, 27, 30)]
    assert compute(five, NOW, LONDON, QUIET).early
    # Five pauses over three weeks: a trend can be shown.
    spread = [rating(at(day, 9), "pause", "rate", 6) for day in (16, 17, 24, 25, 30)]
    assert not compute(spread, NOW, LONDON, QUIET).early


def test_a_tomorrow_morning_promise_is_placed_at_nine() -> None:
    # Asked at 23:30 for "tomorrow morning": the reminder is the next 09:00. Back at
    # 09:20 is kept; back at 10:00 is outside the grace.
    def promise(back_minute: int) -> list[JournalEntry]:
        return [
            choice(at(27, 23, 30), "space", "when", "morning"),
            choice(at(27, 23, 31), "space", "offer", "yes"),
            rating(
                at(28, 9, back_minute) if back_minute < 60 else at(28, 10),
                "space_return",
                "settled",
                5,
            ),
        ]

    kept = compute(promise(20), NOW, LONDON, QUIET)
    late = compute(promise(60), NOW, LONDON, QUIET)
    assert (kept.space_asked, kept.space_kept) == (1, 1)
    assert (late.space_asked, late.space_kept) == (1, 0)
