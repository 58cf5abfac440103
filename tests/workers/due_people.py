"""People with one follow-up each, already due: what the multi-process delivery tests
start from."""

from __future__ import annotations

from datetime import datetime, timedelta

from dialogs.store import FollowUpRequest, Profile, Store, UserKey


async def plant_due_followups(
    store: Store, prefix: str, count: int, now: datetime
) -> list[UserKey]:
    """`count` consented adults (`test`, `<prefix><n>`), each with a follow-up due a
    second ago, in one transaction."""
    people = [UserKey("test", f"{prefix}{n}") for n in range(count)]
    async with store.session() as session:
        for user in people:
            # Real time, at any hour: no quiet hours, or at night it would wait.
            await session.save_profile(
                user,
                Profile(
                    consent_at=now,
                    adult=True,
                    screened=True,
                    quiet_start="00:00",
                    quiet_end="00:00",
                ),
            )
            await session.schedule_followup(
                user,
                FollowUpRequest(
                    "followup",
                    user.user_id,
                    now - timedelta(seconds=1),
                    now + timedelta(hours=1),
                    f"k-{user.user_id}",
                ),
            )
    return people
