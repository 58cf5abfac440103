"""The figures in words: a few short lines, one fact each, for a phone screen and a
screen reader alike (no symbols standing for words, no table)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from dialogs.flows.templates import render
from dialogs.insights.numbers import MIN_PAUSES_FOR_TREND, MIN_WEEKS_FOR_TREND, Insights
from dialogs.insights.signals import SETTLED_AT
from dialogs.insights.words import InsightsCopy

# Settling times up to this long are said in minutes, longer ones in hours.
MINUTES_UP_TO = timedelta(minutes=120)


def number(value: float) -> str:
    """6.0 as "6", 6.5 as "6.5": one decimal at most, and none when it is whole."""
    rounded = round(value, 1)
    return str(int(rounded)) if rounded == int(rounded) else f"{rounded:.1f}"


def summary(insights: Insights, words: InsightsCopy, helped_labels: Mapping[str, str]) -> str:
    """The message `/insights` sends; `words.none_yet` alone when there are no pauses."""
    if not insights.pauses:
        return words.none_yet
    lines = [words.intro]
    weeks = max(len(insights.weeks), 1)
    count = len(insights.pauses)
    lines.append(render(words.pauses, {"count": count, "per_week": number(count / weeks)}))
    before, after = insights.before, insights.after
    if before is not None and after is not None:
        lines.append(render(words.loudness, {"before": number(before), "after": number(after)}))
    elif before is not None:
        lines.append(render(words.loudness_before_only, {"before": number(before)}))
    settling = insights.settling
    if settling is not None:
        took = settling[0]
        if took <= MINUTES_UP_TO:
            duration = counted(words, "minute", max(1, round(took.total_seconds() / 60)))
        else:
            duration = counted(words, "hour", round(took.total_seconds() / 3600))
        values = {"duration": duration, "settled_at": SETTLED_AT}
        lines.append(render(words.settling, values))
    if insights.helped:
        option, times = insights.helped[0]
        label = helped_labels.get(option, option.replace("_", " "))
        said = counted(words, "time", times)
        lines.append(render(words.helped, {"label": label, "times": said}))
    if insights.space_asked:
        kept = {"kept": insights.space_kept, "asked": insights.space_asked}
        lines.append(render(words.space, kept))
    if insights.checkins_answered:
        lines.append(render(words.checkins, {"count": insights.checkins_answered}))
    if insights.early:
        limits = {"min_pauses": MIN_PAUSES_FOR_TREND, "min_weeks": MIN_WEEKS_FOR_TREND}
        lines.append(render(words.early, limits))
    return "\n".join(lines)


def counted(words: InsightsCopy, what: str, count: int) -> str:
    """ "no pauses", "1 pause", "3 pauses" (and the same for check-ins; minutes,
    hours and times never count zero)."""
    key = "none" if count == 0 and what in ("pause", "checkin") else "one" if count == 1 else "many"
    return render(getattr(words, f"{what}_{key}"), {"count": count})


def week_line(insights: Insights, words: InsightsCopy) -> str:
    """The weekly offer's line about the past seven days."""
    return render(
        words.week_line,
        {
            "pauses": counted(words, "pause", len(insights.pauses)),
            "checkins": counted(words, "checkin", insights.checkins_answered),
        },
    )
