"""Rendered messages (`dialogs.events.Outbound`) as JSON, for `followups.messages`.

One message is `{"text": str, "choices": [[id, label], ...], "private_only": bool,
"image": str | null}`, plus `"to": [platform, user_id, chat_id, is_private]` when it
goes to another address and `"thread": str` for a post that opens one; a choice
with a start payload is `[id, label, payload]`.
Attachments are never stored: follow-ups never carry files (the only files are
data exports, sent in reply to the person, and a copy of one here would be personal
data kept past its use), so a message read back always has `attachment=None`. A
chart is stored as what it shows (`"chart": {...}`, `dialogs.insights.chart.Chart`:
titles and the 0-10 numbers of the journal, nothing typed) and drawn again when the
row is sent (`dialogs.insights.drawing.draw_charts`), so a reply with a chart is
owed like any other after a crash.

With a cipher the whole list is sealed as one `{"_enc": "<token>"}`, like
conversation variables, because the text can quote what the person typed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from dialogs.events import Address, Choice, Outbound
from dialogs.insights.chart import Chart
from storage.crypto import ENCRYPTED_KEY, VariableCipher
from storage.errors import StorageError

_KEYS = frozenset({"text", "choices", "private_only", "image"})
_OPTIONAL_KEYS = frozenset({"to", "thread", "chart"})


def outbound_to_json(message: Outbound) -> dict[str, Any]:
    """One message as JSON-ready data; its attachment, if any, is left out."""
    data: dict[str, Any] = {
        "text": message.text,
        "choices": [_choice_json(choice) for choice in message.choices],
        "private_only": message.private_only,
        "image": message.image,
    }
    if message.to is not None:
        to = message.to
        data["to"] = [to.platform, to.user_id, to.chat_id, to.is_private]
    if message.thread is not None:
        data["thread"] = message.thread
    if message.chart is not None:
        data["chart"] = chart_to_json(message.chart)
    return data


def chart_to_json(chart: Chart) -> dict[str, Any]:
    return {f.name: _plain(getattr(chart, f.name)) for f in fields(chart)}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def chart_from_json(data: Any) -> Chart:
    """The chart `chart_to_json` wrote; StorageError if `data` is not one."""
    names = {f.name for f in fields(Chart)}
    if not isinstance(data, dict) or set(data) != names:
        raise StorageError(f"stored chart has an unexpected shape: {_shape(data)}")
    values: dict[str, Any] = {
        name: tuple(v) if isinstance(v, list) else v for name, v in data.items()
    }
    return Chart(**values)


def _choice_json(choice: Choice) -> list[str]:
    if choice.start_payload is None:
        return [choice.id, choice.label]
    return [choice.id, choice.label, choice.start_payload]


def outbound_from_json(data: Any) -> Outbound:
    """The message `outbound_to_json` wrote; StorageError if `data` is not one."""
    if not isinstance(data, dict) or not _KEYS <= set(data) <= _KEYS | _OPTIONAL_KEYS:
        raise StorageError(f"stored follow-up message has an unexpected shape: {_shape(data)}")
    text, choices, private_only, image = (
        data["text"],
        data["choices"],
        data["private_only"],
        data["image"],
    )
    if (
        not isinstance(text, str)
        or not isinstance(choices, list)
        or not isinstance(private_only, bool)
        or not (image is None or isinstance(image, str))
    ):
        raise StorageError("stored follow-up message has a field of the wrong type")
    return Outbound(
        text=text,
        choices=tuple(_choice(item) for item in choices),
        private_only=private_only,
        image=image,
        to=_address(data.get("to")),
        thread=data["thread"] if isinstance(data.get("thread"), str) else None,
        chart=chart_from_json(data["chart"]) if data.get("chart") is not None else None,
    )


def _address(item: Any) -> Address | None:
    if item is None:
        return None
    if (
        not isinstance(item, list)
        or len(item) != 4
        or not all(isinstance(part, str) for part in item[:3])
        or not isinstance(item[3], bool)
    ):
        raise StorageError("stored follow-up message has a malformed address")
    return Address(item[0], item[1], item[2], item[3])


def encode_messages(
    messages: Sequence[Outbound], cipher: VariableCipher | None
) -> list[Any] | dict[str, Any]:
    """What to store in `followups.messages` for `messages`."""
    data = [outbound_to_json(message) for message in messages]
    if cipher is None:
        return data
    return cipher.seal_json(data)


def open_messages(stored: Any, cipher: VariableCipher | None) -> list[Any] | None:
    """The plain JSON list behind a stored `followups.messages` value (None stays None)."""
    if stored is None or isinstance(stored, list):
        return stored
    if isinstance(stored, dict) and set(stored) == {ENCRYPTED_KEY}:
        token = stored[ENCRYPTED_KEY]
        if not isinstance(token, str):
            raise StorageError(f"stored follow-up messages have a non-text {ENCRYPTED_KEY!r}")
        if cipher is None:
            raise StorageError(
                "follow-up messages are encrypted; set the key they were written with"
            )
        opened = cipher.open_json(token)
        if not isinstance(opened, list):
            raise StorageError("encrypted follow-up messages are not a list")
        return opened
    raise StorageError(f"stored follow-up messages have an unexpected shape: {_shape(stored)}")


def decode_messages(stored: Any, cipher: VariableCipher | None) -> tuple[Outbound, ...]:
    """The messages held in a stored `followups.messages` value; () for None."""
    return tuple(outbound_from_json(item) for item in open_messages(stored, cipher) or ())


def _choice(item: Any) -> Choice:
    if (
        not isinstance(item, list)
        or len(item) not in (2, 3)
        or not all(isinstance(part, str) for part in item)
    ):
        raise StorageError("stored follow-up message has a malformed choice")
    return Choice(id=item[0], label=item[1], start_payload=item[2] if len(item) == 3 else None)


def _shape(value: Any) -> str:
    # Names the structure only: the values may be a person's words.
    if isinstance(value, dict):
        return f"object with keys {sorted(map(str, value))}"
    return type(value).__name__
