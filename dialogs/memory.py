"""What the guide remembers from a person's journal, and how it uses it: which wording
of a step to show, and what helped them last time.

Only the journal is read, and the journal holds taps and numbers, never free text.
Both uses are deterministic given the journal, so a test can say exactly what a person
sees:
- a step with `variants` shows the wording after the one this person saw last (the
  first wording the first time), and writes which one it showed as a journal row of
  kind `wording`; so nobody gets the same wording twice in a row;
- a flow that declares a memory variable (`MEMORY_VARIABLES`) gets it filled in when it
  starts, from the journal row named in `SOURCES`.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from dialogs.flows.model import MEMORY_VARIABLES, Flow, Step
from dialogs.store import VarValue
from dialogs.turn import Turn

# The journal kind that records which wording of a step a person was shown; its value
# is the wording's index ("0" is the step's `text`, "1" its first variant...).
WORDING = "wording"
# Where each memory variable comes from: (flow, step, journal kind), and the values
# that mean "nothing to remember".
SOURCES: dict[str, tuple[str, str, str]] = {
    "last_helped": ("followup", "helped", "choice"),
}
NOTHING = {"last_helped": frozenset({"nothing"})}
assert set(SOURCES) == set(MEMORY_VARIABLES), "every memory variable needs a source"


class Memory:
    """Reads the journal through the turn's store session; holds nothing itself."""

    async def wording(self, turn: Turn, flow: Flow, step: Step) -> tuple[str, ...]:
        """The texts to show for `step`: the next of its wordings for this person."""
        wordings = step.wordings()
        if len(wordings) < 2:
            return step.text
        if not flow.journal:
            # Nothing of this flow may be kept, so there is nothing to vary from.
            return wordings[0]
        last = await turn.session.last_journal_value(turn.user, flow.id, step.id, WORDING)
        index = (int(last) + 1) % len(wordings) if last is not None and last.isdigit() else 0
        await turn.session.append_journal(turn.user, turn.at, flow.id, step.id, WORDING, str(index))
        return wordings[index]

    async def recall(
        self, turn: Turn, flow: Flow, variables: MutableMapping[str, VarValue]
    ) -> None:
        """Fill in the memory variables `flow` declares, where the journal knows them."""
        for name in MEMORY_VARIABLES:
            if name not in flow.variables:
                continue
            source_flow, step_id, kind = SOURCES[name]
            value = await turn.session.last_journal_value(turn.user, source_flow, step_id, kind)
            if value is not None and value not in NOTHING.get(name, ()):
                variables[name] = value
