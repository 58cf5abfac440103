"""The words of `/insights` and the weekly insight, loaded from `content/insights.yaml`.

Counts are said through `one`/`many` pairs (and `none` where zero reads better as
words), so no sentence needs grammar in code.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

Text = str
Label = str

# Placeholders each text may use; anything else is a content error.
INSIGHTS_FIELDS: dict[str, set[str]] = {
    "pauses": {"count", "per_week"},
    "loudness": {"before", "after"},
    "loudness_before_only": {"before"},
    "settling": {"duration", "settled_at"},
    "minute_one": {"count"},
    "minute_many": {"count"},
    "hour_one": {"count"},
    "hour_many": {"count"},
    "helped": {"label", "times"},
    "time_one": {"count"},
    "time_many": {"count"},
    "space": {"kept", "asked"},
    "checkins": {"count"},
    "early": {"min_pauses", "min_weeks"},
    "week_line": {"pauses", "checkins"},
    "pause_one": {"count"},
    "pause_many": {"count"},
    "checkin_one": {"count"},
    "checkin_many": {"count"},
}


class InsightsCopy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # With no pauses at all: a kind word, and no chart.
    none_yet: Text = Field(min_length=1, max_length=2000)
    intro: Text = Field(min_length=1, max_length=2000)
    pauses: Text = Field(min_length=1, max_length=300)
    loudness: Text = Field(min_length=1, max_length=300)
    loudness_before_only: Text = Field(min_length=1, max_length=300)
    settling: Text = Field(min_length=1, max_length=300)
    minute_one: Text = Field(min_length=1, max_length=60)
    minute_many: Text = Field(min_length=1, max_length=60)
    hour_one: Text = Field(min_length=1, max_length=60)
    hour_many: Text = Field(min_length=1, max_length=60)
    time_one: Text = Field(min_length=1, max_length=60)
    time_many: Text = Field(min_length=1, max_length=60)
    helped: Text = Field(min_length=1, max_length=300)
    space: Text = Field(min_length=1, max_length=300)
    checkins: Text = Field(min_length=1, max_length=300)
    early: Text = Field(min_length=1, max_length=300)
    # The weekly offer's one line about the past seven days.
    week_line: Text = Field(min_length=1, max_length=300)
    pause_none: Text = Field(min_length=1, max_length=60)
    pause_one: Text = Field(min_length=1, max_length=60)
    pause_many: Text = Field(min_length=1, max_length=60)
    checkin_none: Text = Field(min_length=1, max_length=60)
    checkin_one: Text = Field(min_length=1, max_length=60)
    checkin_many: Text = Field(min_length=1, max_length=60)
    # On the picture: short, read at phone size.
    chart_title: Label = Field(min_length=1, max_length=40)
    chart_early_title: Label = Field(min_length=1, max_length=40)
    chart_pauses_axis: Label = Field(min_length=1, max_length=30)
    chart_loudness_axis: Label = Field(min_length=1, max_length=30)
    chart_weeks_axis: Label = Field(min_length=1, max_length=30)
    chart_each_pause_axis: Label = Field(min_length=1, max_length=30)
    chart_before: Label = Field(min_length=1, max_length=20)
    chart_after: Label = Field(min_length=1, max_length=20)
    # What the picture shows, for whoever cannot see it (alt text).
    chart_description: Text = Field(min_length=1, max_length=1000)
