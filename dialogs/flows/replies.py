"""What the guide says to typed text outside a flow, per intent, and what it offers.

Authors write these in `content/understanding/replies.yaml`: one short line that
fits what the person said, and one to three buttons, each a command the person could
have typed. Without them the guide would answer every message with the same menu.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

Text = Annotated[str, Field(min_length=1, max_length=2000)]


class Offer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: Annotated[str, Field(min_length=1, max_length=64)]
    command: Annotated[str, Field(pattern=r"^/[a-z_]+( [a-z_]+)*$")]


class IntentReply(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: Text
    offers: tuple[Offer, ...] = Field(default=(), max_length=3)


class IntentReplies(BaseModel):
    """`replies` per intent (crisis and danger never: the safety tiers answer those)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    replies: dict[str, IntentReply]
    # Offered as a button, per intent, when the guide is unsure which was meant.
    offer_labels: dict[str, Annotated[str, Field(min_length=1, max_length=64)]]
    did_you_mean: Text
    something_else: Annotated[str, Field(min_length=1, max_length=64)]

    @field_validator("replies", "offer_labels")
    @classmethod
    def _no_safety_intents(cls, value: dict[str, object]) -> dict[str, object]:
        bad = sorted(set(value) & {"crisis", "danger"})
        if bad:
            raise ValueError(f"{bad} are answered by the safety tiers, not by a reply")
        return value
