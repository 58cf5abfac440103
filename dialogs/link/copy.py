"""The partner link's own words, loaded from `content/link_copy.yaml`.

The explanation a person agrees to lives in the flows `link` and `link_accept`;
these are the words around it: invitations, the signals themselves, limits, and
what either side is told when the link pauses or ends.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_Copy = Field(min_length=1, max_length=1000)
_Label = Field(min_length=1, max_length=64)

# Placeholders each text may use; anything else is a content error.
LINK_COPY_FIELDS: dict[str, set[str]] = {
    "invitation": {"code", "hours"},
    "invitation_telegram": {"code", "link", "hours"},
    "words_space": {"time"},
    "words_more_time": {"time"},
    "offer": {"words"},
    "their_time": {"time", "yours"},
    "would_wait": {"when"},
    "waiting": {"when"},
    "limit_hour": {"when"},
    "received": {"words"},
    "received_answer": {"words"},
}


class LinkCopy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Invitations and opening a code.
    invitation: str = _Copy
    invitation_telegram: str = _Copy
    code_unknown: str = _Copy
    own_code: str = _Copy
    already_linked: str = _Copy
    linked: str = _Copy
    declined: str = _Copy
    # /link when linked, and /unlink.
    status_active: str = _Copy
    status_paused: str = _Copy
    unlinked: str = _Copy
    not_linked: str = _Copy
    # Sent to the other side: all they ever learn about an unlinking, or a pause.
    link_ended: str = _Copy
    link_paused: str = _Copy
    # The signals' exact words.
    words_space: str = _Copy
    words_back: str = _Copy
    words_more_time: str = _Copy
    words_talk: str = _Copy
    words_pause: str = _Copy
    answer_ready_now: str = _Label
    answer_later_tonight: str = _Label
    answer_tomorrow: str = _Label
    tomorrow: str = _Label
    # Offering a signal to its sender, and what follows their tap.
    offer: str = _Copy
    their_time: str = _Copy
    would_wait: str = _Copy
    send_label: str = _Label
    skip_label: str = _Label
    sent: str = _Copy
    waiting: str = _Copy
    skipped: str = _Copy
    offer_gone: str = _Copy
    limit_hour: str = _Copy
    limit_day: str = _Copy
    # What the receiver reads.
    received: str = _Copy
    received_answer: str = _Copy
    answer_gone: str = _Copy
