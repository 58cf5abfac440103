"""What the chart shows, as plain data: no drawing library here.

Two panels, stacked for a phone held upright: pauses per week (bars), and how loud
it was before and after. With enough pauses across enough weeks, the second panel
gives each week's middle values as two lines; before that, it shows each pause on
its own (a pair of bars) under the title "too early to see a trend", so no line
suggests a direction the numbers cannot support yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from dialogs.insights.numbers import Insights
from dialogs.insights.words import InsightsCopy

FILENAME = "pausecheck-insights.png"
# In early mode, at most this many of the latest pauses are shown one by one.
EARLY_PAUSES_SHOWN = 8


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    # Alt text: what the picture shows, for whoever cannot see it.
    description: str
    week_labels: tuple[str, ...]
    pauses_per_week: tuple[int, ...]
    pauses_axis: str
    weeks_axis: str
    # The second panel: one group per week (a trend) or per pause (early).
    loudness_labels: tuple[str, ...]
    before: tuple[float | None, ...]
    after: tuple[float | None, ...]
    loudness_axis: str
    loudness_x_axis: str
    before_label: str
    after_label: str
    early: bool
    filename: str = FILENAME


def chart(insights: Insights, words: InsightsCopy) -> Chart | None:
    """The chart for `insights`; None with no pauses (there is nothing to draw)."""
    if not insights.pauses:
        return None
    week_labels = tuple(_day(week.start.day, week.start.strftime("%b")) for week in insights.weeks)
    if insights.early:
        shown = insights.pauses[-EARLY_PAUSES_SHOWN:]
        first = len(insights.pauses) - len(shown) + 1
        labels = tuple(str(first + n) for n in range(len(shown)))
        before: tuple[float | None, ...] = tuple(float(p.before) for p in shown)
        after: tuple[float | None, ...] = tuple(
            None if p.after is None else float(p.after) for p in shown
        )
        x_axis = words.chart_each_pause_axis
    else:
        labels = week_labels
        before = tuple(week.before for week in insights.weeks)
        after = tuple(week.after for week in insights.weeks)
        x_axis = words.chart_weeks_axis
    return Chart(
        title=words.chart_early_title if insights.early else words.chart_title,
        description=words.chart_description,
        week_labels=week_labels,
        pauses_per_week=tuple(week.pauses for week in insights.weeks),
        pauses_axis=words.chart_pauses_axis,
        weeks_axis=words.chart_weeks_axis,
        loudness_labels=labels,
        before=before,
        after=after,
        loudness_axis=words.chart_loudness_axis,
        loudness_x_axis=x_axis,
        before_label=words.chart_before,
        after_label=words.chart_after,
        early=insights.early,
    )


def _day(day: int, month: str) -> str:
    # "3 Nov": day first and no leading zero, short enough for a phone's axis.
    return f"{day} {month}"
