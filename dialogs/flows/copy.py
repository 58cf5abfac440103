"""The engine's own words (replies outside any flow), loaded from `content/copy.yaml`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Placeholders each text may use; anything else is a content error.
ALLOWED_FIELDS: dict[str, set[str]] = {
    "unknown_command": {"command"},
    "trimmed_answer": {"limit"},
    "stop_also_cancel": {"planned"},
    "stop_checkin_stays": {"when"},
    "stop_cancelled": {"planned"},
    "concern_danger": {"resources", "emergency"},
    "concern_crisis": {"resources", "emergency"},
    "stopped_keeping": {"count"},
}

Text = str


class EngineCopy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    idle: Text = Field(min_length=1, max_length=2000)
    idle_pause_label: Text = Field(min_length=1, max_length=64)
    idle_help_label: Text = Field(min_length=1, max_length=64)
    didnt_catch: Text = Field(min_length=1, max_length=2000)
    scale_reprompt: Text = Field(min_length=1, max_length=2000)
    empty_message: Text = Field(min_length=1, max_length=2000)
    trimmed_answer: Text = Field(min_length=1, max_length=2000)
    stale_button: Text = Field(min_length=1, max_length=2000)
    unknown_command: Text = Field(min_length=1, max_length=2000)
    stopped: Text = Field(min_length=1, max_length=2000)
    # /stop with something planned (dialogs/listener.py): it asks, naming each.
    stop_lead: Text = Field(min_length=1, max_length=2000)
    stop_lead_idle: Text = Field(min_length=1, max_length=2000)
    stop_also_cancel: Text = Field(min_length=1, max_length=2000)
    stop_checkin_stays: Text = Field(min_length=1, max_length=2000)
    stop_cancel_yes: Text = Field(min_length=1, max_length=64)
    stop_cancel_no: Text = Field(min_length=1, max_length=64)
    stop_checkins_label: Text = Field(min_length=1, max_length=64)
    stop_cancelled: Text = Field(min_length=1, max_length=2000)
    stop_kept: Text = Field(min_length=1, max_length=2000)
    nothing_to_stop: Text = Field(min_length=1, max_length=2000)
    not_human_reminder: Text = Field(min_length=1, max_length=2000)
    # Before a flow's opening runs for someone who has not agreed yet (the breathing
    # comes before the agreement, but what the guide is comes first).
    before_agreement: Text = Field(min_length=1, max_length=2000)
    not_human_answer: Text = Field(min_length=1, max_length=2000)
    export_ready: Text = Field(min_length=1, max_length=2000)
    expect_time: Text = Field(min_length=1, max_length=2000)
    expect_zone: Text = Field(min_length=1, max_length=2000)
    checkins_stopped: Text = Field(min_length=1, max_length=2000)
    schedule_empty: Text = Field(min_length=1, max_length=2000)
    schedule_header: Text = Field(min_length=1, max_length=2000)
    schedule_cancelled: Text = Field(min_length=1, max_length=2000)
    schedule_gone: Text = Field(min_length=1, max_length=2000)
    not_your_button: Text = Field(min_length=1, max_length=2000)
    discord_dms_closed: Text = Field(min_length=1, max_length=2000)
    welcome_back: Text = Field(min_length=1, max_length=2000)
    content_changed: Text = Field(min_length=1, max_length=2000)
    error_apology: Text = Field(min_length=1, max_length=2000)
    # One person sent more than the burst cap allows (bot.person_queue).
    slow_down: Text = Field(min_length=1, max_length=2000)
    # An event that arrived while the guide was stopping (a restart, a deploy).
    restarting: Text = Field(min_length=1, max_length=2000)
    # Typed text, understood (dialogs/listener.py).
    heard_you: Text = Field(min_length=1, max_length=2000)
    more_options: Text = Field(min_length=1, max_length=64)
    concern_danger: Text = Field(min_length=1, max_length=2000)
    concern_crisis: Text = Field(min_length=1, max_length=2000)
    concern_yes: Text = Field(min_length=1, max_length=64)
    concern_no: Text = Field(min_length=1, max_length=64)
    concern_cleared: Text = Field(min_length=1, max_length=2000)
    stop_confirm: Text = Field(min_length=1, max_length=2000)
    stop_yes: Text = Field(min_length=1, max_length=64)
    stop_no: Text = Field(min_length=1, max_length=64)
    stopped_keeping: Text = Field(min_length=1, max_length=2000)
