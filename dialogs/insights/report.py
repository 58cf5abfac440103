"""The `/insights` actions: read the journal, say the figures, describe the chart,
and the weekly insight's opt-in and its line about the week.

Only the person's own journal is read (taps and numbers), within one turn; the
chart is drawn after the turn commits (`dialogs.insights.drawing`).
"""

from __future__ import annotations

from datetime import timedelta

from dialogs.content import Content
from dialogs.events import Outbound
from dialogs.flows.model import ChoiceStep
from dialogs.followups.checkins import Checkins, quiet_hours
from dialogs.insights.chart import chart
from dialogs.insights.numbers import Insights, compute
from dialogs.insights.signals import HELPED
from dialogs.insights.summary import summary, week_line
from dialogs.insights.words import InsightsCopy
from dialogs.turn import Turn

# As far back as the journal keeps rows by default (and a day more, for a leap year).
LOOK_BACK = timedelta(days=366)
WEEK = timedelta(days=7)


class InsightsReport:
    def __init__(self, content: Content, checkins: Checkins) -> None:
        self._content = content
        self._checkins = checkins

    @property
    def _words(self) -> InsightsCopy:
        if self._content.insights is None:
            raise RuntimeError("content/insights.yaml is missing")
        return self._content.insights

    async def _insights(self, turn: Turn, since: timedelta) -> Insights:
        entries = await turn.session.read_journal(turn.user, turn.at - since)
        zone = self._checkins.zone_of(turn.profile)
        return compute(entries, turn.at, zone, quiet_hours(turn.profile))

    async def show(self, turn: Turn) -> None:
        """The summary with its chart (none without pauses). Sets `has_pauses` and
        `weekly` ("yes"/"no") for the flow's branches."""
        insights = await self._insights(turn, LOOK_BACK)
        text = summary(insights, self._words, self._helped_labels())
        picture = chart(insights, self._words)
        turn.out.append(Outbound(text, private_only=True, chart=picture))
        turn.variables["has_pauses"] = "yes" if insights.pauses else "no"
        weekly = await self._checkins.weekly_insight_on(turn)
        turn.variables["weekly"] = "yes" if weekly else "no"

    async def week(self, turn: Turn) -> None:
        """For the weekly offer: `news` ("yes" when the past seven days hold a pause
        or an answered check-in) and `week_line`, the sentence about them."""
        insights = await self._insights(turn, WEEK)
        news = bool(insights.pauses or insights.checkins_answered)
        turn.variables["news"] = "yes" if news else "no"
        turn.variables["week_line"] = week_line(insights, self._words)

    def _helped_labels(self) -> dict[str, str]:
        flow = self._content.flows.get(HELPED[0])
        step = flow.step(HELPED[1]) if flow is not None else None
        if not isinstance(step, ChoiceStep):
            return {}
        return {option.id: option.label for option in step.options}
