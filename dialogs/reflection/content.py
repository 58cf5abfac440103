"""Group reflections as data: `content/reflections/*.yaml` and the words around them
in `content/reflection_copy.yaml`.

A reflection is a short list of steps. Each step has a line the whole group sees
(`group_text`, nothing personal) and a prompt each participant gets privately. An
option may carry a `tally` ("contact" or "space"): the end-of-session summary counts
those, anonymously.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The summary counts only these habits of the moment, never anything a person wrote.
TALLIES = ("contact", "space")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReflectionOption(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_]{1,12}$")
    # Button labels: Discord allows 80, Telegram shows about 40 comfortably.
    label: str = Field(min_length=1, max_length=40)
    tally: Literal["contact", "space"] | None = None


class ReflectionStep(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_]{1,20}$")
    group_text: str = Field(min_length=1, max_length=80)
    prompt: str = Field(min_length=1, max_length=1000)
    kind: Literal["choice", "text"]
    options: tuple[ReflectionOption, ...] = ()

    @model_validator(mode="after")
    def _options_fit_kind(self) -> ReflectionStep:
        if self.kind == "choice" and not 2 <= len(self.options) <= 5:
            raise ValueError("a choice step needs 2 to 5 options")
        if self.kind == "text" and self.options:
            raise ValueError("a text step has no options")
        ids = [o.id for o in self.options]
        if len(ids) != len(set(ids)):
            raise ValueError("option ids must be unique within the step")
        return self


class Reflection(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_]{1,20}$")
    title: str = Field(min_length=1, max_length=60)
    summary: str = Field(min_length=1, max_length=100)
    intro: str = Field(min_length=1, max_length=1000)
    # Counted in the validator below, not with min_length: pydantic would also report
    # "too short" for a list whose only step has an error of its own.
    steps: tuple[ReflectionStep, ...]
    closing: str = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _unique_steps(self) -> Reflection:
        if not 1 <= len(self.steps) <= 10:
            raise ValueError("a reflection has 1 to 10 steps")
        ids = [s.id for s in self.steps]
        if len(ids) != len(set(ids)):
            raise ValueError("step ids must be unique within the reflection")
        return self


# Template variables each copy key may use; anything else is a content error.
REFLECTION_COPY_FIELDS: dict[str, set[str]] = {
    "picker": {"minutes"},
    "opened": {"title", "intro", "steps", "minutes"},
    "step_group": {"number", "steps", "group_text", "minutes"},
    "step_private": {"number", "steps", "title", "prompt"},
    "joined": {"title"},
    "shared_group": {"answer"},
    "resumed_group": {"minutes"},
    "extended_group": {"minutes"},
    "summary_group": {"joined", "contact", "space", "shared"},
    "too_long": {"limit"},
}

_Copy = Field(min_length=1, max_length=1000)
_Label = Field(min_length=1, max_length=40)


class ReflectionCopy(_Strict):
    picker: str = _Copy
    only_in_groups: str = _Copy
    not_facilitator: str = _Copy
    already_running: str = _Copy
    none_running: str = _Copy
    unknown_reflection: str = _Copy
    opened: str = _Copy
    join_label: str = _Label
    controls: str = _Copy
    next_label: str = _Label
    pause_label: str = _Label
    resume_label: str = _Label
    extend_label: str = _Label
    end_label: str = _Label
    step_group: str = _Copy
    step_private: str = _Copy
    joined: str = _Copy
    already_joined: str = _Copy
    join_needs_consent: str = _Copy
    not_for_minors: str = _Copy
    ended: str = _Copy
    not_joined: str = _Copy
    moved_on: str = _Copy
    kept: str = _Copy
    share_label: str = _Label
    save_label: str = _Label
    shared_group: str = _Copy
    shared: str = _Copy
    already_shared: str = _Copy
    share_held_back: str = _Copy
    # A share with a link in it is refused (a link posted anonymously into a group is
    # how a hostile member would phish everyone there).
    share_has_link: str = _Copy
    # Joining needs membership of the group the reflection runs in.
    not_member: str = _Copy
    saved: str = _Copy
    paused_group: str = _Copy
    already_paused: str = _Copy
    not_paused: str = _Copy
    resumed_group: str = _Copy
    extended_group: str = _Copy
    summary_group: str = _Copy
    summary_too_few: str = _Copy
    followup_offer: str = _Copy
    followup_yes_label: str = _Label
    followup_no_label: str = _Label
    followup_set: str = _Copy
    followup_declined: str = _Copy
    too_long: str = _Copy
    empty_answer: str = _Copy
    # Telegram: an admin posting as the group cannot be told apart from other admins.
    anonymous_admin: str = _Copy
