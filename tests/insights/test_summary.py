"""The figures in words: short lines, plain words, true with few pauses or none."""

from __future__ import annotations

from datetime import time
from zoneinfo import ZoneInfo

from dialogs.content import Content
from dialogs.insights.numbers import compute
from dialogs.insights.summary import summary, week_line
from dialogs.store import JournalEntry
from tests.insights.journal import NOW, at, choice, rating, three_weeks, two_pauses

LONDON = ZoneInfo("Europe/London")
QUIET = (time(22, 0), time(8, 0))
HELPED = {"breathing": "Breathing", "moving": "Moving my body"}


def words(content: Content):  # type: ignore[no-untyped-def]
    assert content.insights is not None
    return content.insights


def said(content: Content, entries: list[JournalEntry]) -> str:
    return summary(compute(entries, NOW, LONDON, QUIET), words(content), HELPED)


def test_the_full_summary(content: Content) -> None:
    assert said(content, three_weeks()).splitlines() == [
        "What your journal shows, from your taps and numbers:",
        # 5 pauses over 3 weeks.
        "Pauses: 5, about 1.7 a week.",
        "How loud, 0 to 10: 7 before a pause, 3 after. These are middle values.",
        "Time to settle to 3 or lower: about 30 minutes, the middle value.",
        "What helped most often: Breathing, 2 times.",
        "Space with a return time: back when you said, 3 of 4.",
        "Check-ins answered: 2.",
    ]


def test_two_pauses_say_it_is_too_early(content: Content) -> None:
    lines = said(content, two_pauses()).splitlines()
    # Two pauses in the week of 23 Nov, none yet in this one (30 Nov): two weeks.
    assert lines[1] == "Pauses: 2, about 1 a week."
    assert lines[2] == "How loud, 0 to 10: 7.5 before a pause, 4 after. These are middle values."
    assert lines[-1].startswith("Too early to see a trend.")
    # No settling time: 4 is not settled, so nothing is claimed about it.
    assert not any("settle" in line for line in lines)


def test_one_of_each_reads_in_the_singular(content: Content) -> None:
    entries = [
        rating(at(30, 8), "pause", "rate", 8),
        rating(at(30, 8, 1), "pause", "breathe_again", 3),
        choice(at(30, 8, 30), "followup", "helped", "moving"),
    ]
    lines = said(content, entries).splitlines()
    assert "Time to settle to 3 or lower: about 1 minute, the middle value." in lines
    assert "What helped most often: Moving my body, once." in lines


def test_without_an_after_rating_only_before_is_said(content: Content) -> None:
    lines = said(content, [rating(at(30, 8), "pause", "rate", 6)]).splitlines()
    assert lines[2].startswith("How loud before a pause, 0 to 10: 6, the middle value.")


def test_no_pauses_is_a_kind_word_and_nothing_else(content: Content) -> None:
    only_checkins = [rating(at(30, 8), "checkin", "settled", 5)]
    assert said(content, []) == words(content).none_yet
    assert said(content, only_checkins) == words(content).none_yet


def test_lines_are_short_and_say_words_not_symbols(content: Content) -> None:
    text = said(content, three_weeks())
    for line in text.splitlines():
        assert len(line) <= 100
    # Read aloud by a screen reader as written: no arrows, bullets or emoji.
    assert all(ord(ch) < 128 for ch in text)


def test_week_line(content: Content) -> None:
    from datetime import timedelta

    week = [e for e in three_weeks() if e.at >= NOW - timedelta(days=7)]
    line = week_line(compute(week, NOW, LONDON, QUIET), words(content))
    assert line == "This past week: 3 pauses and 1 check-in."
    nothing = week_line(compute([], NOW, LONDON, QUIET), words(content))
    assert nothing == "This past week: no pauses and no check-ins."
