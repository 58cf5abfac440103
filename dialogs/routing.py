"""Which messages go where: the chat being answered, or another address.

Most replies go back where the person wrote. A group reflection also posts in the
group and writes to each participant privately (`Outbound.to`); senders deliver
those as separate runs, each to its own address, in the order the engine gave.
"""

from __future__ import annotations

from collections.abc import Sequence

from dialogs.events import Address, Outbound

Run = tuple[Address, list[Outbound]]


def by_destination(messages: Sequence[Outbound]) -> tuple[list[Outbound], list[Run]]:
    """(the messages for the chat being answered, the runs for other addresses).

    Consecutive messages to one address form one run; order is kept within each."""
    here: list[Outbound] = []
    elsewhere: list[Run] = []
    for message in messages:
        if message.to is None:
            here.append(message)
        elif elsewhere and elsewhere[-1][0] == message.to:
            elsewhere[-1][1].append(message)
        else:
            elsewhere.append((message.to, [message]))
    return here, elsewhere
