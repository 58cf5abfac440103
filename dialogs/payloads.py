"""Button payloads: `flow:step:option:turn`, so a press can be checked against the
conversation it was made for. The turn is base-36 and at most
`PAYLOAD_TURN_RESERVE` bytes, which the content check reserves when it proves
every payload fits Telegram's 64-byte callback data."""

from __future__ import annotations

from dataclasses import dataclass

PAYLOAD_TURN_RESERVE = 7
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_MAX_TURN = 36**PAYLOAD_TURN_RESERVE - 1


@dataclass(frozen=True, slots=True)
class Payload:
    flow: str
    step: str
    option: str
    turn: int


def payload_prefix(flow: str, step: str, option: str) -> str:
    return f"{flow}:{step}:{option}:"


def encode_payload(p: Payload) -> str:
    return payload_prefix(p.flow, p.step, p.option) + _base36(p.turn % (_MAX_TURN + 1))


def decode_payload(raw: str) -> Payload | None:
    """None for anything that is not a well-formed payload (forged, truncated)."""
    parts = raw.split(":")
    if len(parts) != 4 or not all(parts) or len(parts[3]) > PAYLOAD_TURN_RESERVE:
        return None
    try:
        turn = int(parts[3], 36)
    except ValueError:
        return None
    return Payload(parts[0], parts[1], parts[2], turn)


def _base36(n: int) -> str:
    if n == 0:
        return "0"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = _DIGITS[r] + out
    return out
