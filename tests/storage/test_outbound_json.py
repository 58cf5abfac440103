import json
from dataclasses import fields
from typing import Any

import pytest
from cryptography.fernet import Fernet

from dialogs.events import Address, Attachment, Choice, Outbound
from storage import StorageError, VariableCipher
from storage.outbound_json import (
    decode_messages,
    encode_messages,
    open_messages,
    outbound_from_json,
    outbound_to_json,
)

MESSAGES = (
    Outbound("Plain text"),
    Outbound(
        "Pick one — «quoted» 🙂",
        choices=(Choice("c:1:yes", "Yes"), Choice("c:1:no", "Not now")),
        private_only=True,
    ),
    Outbound("With a picture", image="images/breathe.png"),
    # A group post of a reflection, with a button that opens a private chat.
    Outbound(
        "Join us",
        choices=(Choice("rf:abc:join", "Join", start_payload="rf_abc"),),
        to=Address("telegram", "", "-100", is_private=False),
        thread="Noticing my move",
    ),
)


def test_messages_round_trip_through_json_text() -> None:
    stored = encode_messages(MESSAGES, None)
    # What the JSON column does: to text and back.
    assert decode_messages(json.loads(json.dumps(stored)), None) == MESSAGES


def test_one_message_as_json() -> None:
    assert outbound_to_json(MESSAGES[1]) == {
        "text": "Pick one — «quoted» 🙂",
        "choices": [["c:1:yes", "Yes"], ["c:1:no", "Not now"]],
        "private_only": True,
        "image": None,
    }


def test_every_outbound_field_but_files_and_charts_is_stored() -> None:
    # Fails when Outbound gains a field the store would silently drop. A chart is
    # drawn into a file after the turn, and files are never stored.
    stored = set(outbound_to_json(Outbound("x", to=Address("console", "1", "1"), thread="t")))
    assert stored == {field.name for field in fields(Outbound)} - {"attachment", "chart"}
    # Likewise for a choice: every field of it is in its stored list.
    choice = Choice("id", "label", start_payload="p")
    (stored_choice,) = outbound_to_json(Outbound("x", choices=(choice,)))["choices"]
    assert len(stored_choice) == len(fields(Choice))


def test_a_malformed_address_is_refused() -> None:
    data = outbound_to_json(Outbound("x"))
    data["to"] = ["telegram", "1"]
    with pytest.raises(StorageError, match="address"):
        outbound_from_json(data)


def test_attachments_are_not_stored() -> None:
    with_file = Outbound("Your data", attachment=Attachment("export.json", b"{}", "text/json"))
    stored = encode_messages([with_file], None)
    assert isinstance(stored, list)
    assert "export" not in json.dumps(stored)
    assert outbound_from_json(stored[0]) == Outbound("Your data")


def test_no_messages() -> None:
    assert encode_messages((), None) == []
    assert decode_messages([], None) == ()
    assert decode_messages(None, None) == ()


@pytest.mark.parametrize(
    "stored",
    [
        "text",
        {"text": "x"},
        [{"text": "x", "choices": [], "private_only": False}],
        [{"text": 1, "choices": [], "private_only": False, "image": None}],
        [{"text": "x", "choices": [["only-id"]], "private_only": False, "image": None}],
        [{"text": "x", "choices": [], "private_only": "no", "image": None}],
        [{"text": "x", "choices": [], "private_only": False, "image": None, "extra": 1}],
        {"_enc": 5},
    ],
)
def test_malformed_stored_messages_are_refused(stored: Any) -> None:
    with pytest.raises(StorageError):
        decode_messages(stored, None)


def test_sealed_with_a_cipher() -> None:
    cipher = VariableCipher(Fernet.generate_key().decode())
    stored = encode_messages(MESSAGES, cipher)
    assert set(stored) == {"_enc"}
    assert "Plain text" not in json.dumps(stored)
    assert decode_messages(stored, cipher) == MESSAGES
    assert open_messages(stored, cipher) == encode_messages(MESSAGES, None)
    with pytest.raises(StorageError, match="encrypted"):
        decode_messages(stored, None)
    other = VariableCipher(Fernet.generate_key().decode())
    with pytest.raises(StorageError):
        decode_messages(stored, other)


def test_plain_messages_are_read_with_a_cipher() -> None:
    # As for variables: a key can be introduced while deliveries are in flight.
    cipher = VariableCipher(Fernet.generate_key().decode())
    assert decode_messages(encode_messages(MESSAGES, None), cipher) == MESSAGES
