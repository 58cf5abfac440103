"""The working copy of one person's conversation while one event is handled.

The engine opens a `Turn` from the store, its collaborators (the flow runner, group
reflections, check-ins) read and change it, and the engine saves it back in the same
transaction. Nothing in it outlives the event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dialogs.events import Outbound
from dialogs.store import ConversationState, Profile, StoreSession, UserKey, VarValue
from dialogs.understanding.base import Reading
from dialogs.user_ref import user_ref


@dataclass(slots=True)
class Turn:
    session: StoreSession
    user: UserKey
    chat_id: str
    at: datetime
    event_key: str
    flow_id: str | None
    step_id: str | None
    variables: dict[str, VarValue]
    turn: int
    version: str
    profile: Profile = field(default_factory=Profile)
    updated_at: datetime | None = None
    out: list[Outbound] = field(default_factory=list)
    scheduled: list[datetime] = field(default_factory=list)
    # Set once everything about the person is deleted: nothing may be written back.
    forgotten: bool = False
    safety_fired: bool = False
    # Where the event happened: a private chat or a group, and whether the platform
    # says the person may run group reflections there.
    private: bool = True
    facilitator: bool = False
    # What the reader made of this event's typed text (never stored).
    reading: Reading | None = None

    @classmethod
    def opened(
        cls,
        session: StoreSession,
        user: UserKey,
        chat_id: str,
        at: datetime,
        event_key: str,
        state: ConversationState,
        profile: Profile,
    ) -> Turn:
        return cls(
            session,
            user,
            chat_id,
            at,
            event_key,
            state.flow_id,
            state.node_id,
            dict(state.variables),
            state.turn,
            state.content_version,
            profile,
            updated_at=state.updated_at,
        )

    def state(self) -> ConversationState:
        return ConversationState(
            flow_id=self.flow_id,
            node_id=self.step_id,
            variables=dict(self.variables),
            turn=self.turn,
            content_version=self.version,
            chat_id=self.chat_id,
        )

    def idle(self) -> None:
        # Dropping the variables is what keeps free-text answers out of the store
        # once a flow is over.
        self.flow_id = None
        self.step_id = None
        self.variables = {}
        self.version = ""

    @property
    def who(self) -> str:
        """The person, for logs: a hash, never the id."""
        return user_ref(self.user.platform, self.user.user_id)
