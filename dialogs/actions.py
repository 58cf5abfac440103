"""Steps that do something only the engine can do: write the profile (`remember`),
send an export, forget a person, re-plan check-ins, show insights, and the partner
link's steps (handed to `dialogs.link.partner.PartnerLinks`). Each returns what the
flow does next, the way every other step kind does in `dialogs.runner`."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from dialogs.events import Attachment, Outbound
from dialogs.flows.model import ActionStep, RememberStep
from dialogs.followups.checkins import Checkins
from dialogs.insights.report import InsightsReport
from dialogs.profile_updates import remembered
from dialogs.steps import Continue, End, StepResult
from dialogs.turn import Turn

if TYPE_CHECKING:
    from dialogs.link.partner import PartnerLinks

log = logging.getLogger(__name__)

EXPORT_NAME = "pausecheck-export.json"
LINK_ACTIONS = ("invite_partner", "accept_partner", "decline_partner", "offer_signal")


class Actions:
    def __init__(
        self,
        checkins: Checkins,
        export_ready: str,
        insights: InsightsReport | None = None,
        links: PartnerLinks | None = None,
    ) -> None:
        self._checkins = checkins
        self._export_ready = export_ready
        self._insights = insights
        self._links = links

    async def remember(self, turn: Turn, step: RememberStep) -> StepResult:
        turn.profile = remembered(turn.profile, step.set, turn.variables, turn.at)
        if "consent" in step.set and step.set["consent"] is not True:
            # Withdrawing consent stops every planned message at once.
            await turn.session.cancel_followups(turn.user)
        return Continue(step.next)

    async def run(self, turn: Turn, step: ActionStep, texts: list[str]) -> StepResult:
        """`export`, `forget`, `reschedule_checkins`, `hold_messages`, `insights`,
        `insights_week`, `weekly_insights_on`/`_off` and the partner link's (`resume` is
        the runner's).
        The step's texts are already shown, except for `export`, which sends its last
        text with the file."""
        if step.do in LINK_ACTIONS:
            # Without the link (an engine built without it), a flow reads as unlinked.
            if self._links is not None:
                return await self._links.step(turn, step)
        elif step.do == "export":
            await self._export(turn, texts)
        elif step.do == "forget":
            if self._links is not None:
                # The partner hears that the link ended, and only that.
                await self._links.forgetting(turn)
            await turn.session.forget_user(turn.user, asked_in=turn.event_key)
            log.info("user forgotten user=%s", turn.who)
            turn.forgotten = True
            turn.idle()
            return End()
        elif step.do == "reschedule_checkins":
            await self._checkins.reschedule(turn)
        elif step.do == "hold_messages":
            held = await turn.session.cancel_followups(turn.user)
            log.info("planned messages held back user=%s count=%d", turn.who, held)
        elif step.do in ("insights", "insights_week"):
            if self._insights is None:
                raise RuntimeError("this engine was built without insights")
            show = self._insights.show if step.do == "insights" else self._insights.week
            await show(turn)
        elif step.do == "weekly_insights_on":
            await self._checkins.start_weekly_insight(turn)
        elif step.do == "weekly_insights_off":
            await self._checkins.stop_weekly_insight(turn)
        assert step.next is not None
        return Continue(step.next)

    async def _export(self, turn: Turn, texts: list[str]) -> None:
        # Save first, so the export holds this very moment too.
        await turn.session.save_profile(turn.user, turn.profile)
        data = await turn.session.export_user(turn.user)
        body = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True).encode()
        text = texts[-1] if texts else self._export_ready
        turn.out.extend(Outbound(t, private_only=True) for t in texts[:-1])
        turn.out.append(
            Outbound(
                text,
                private_only=True,
                attachment=Attachment(EXPORT_NAME, body, "application/json"),
            )
        )
