"""`SafetyScreen`: the real rules on specific cases, and the pattern language itself."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialogs.safety.normalise import match_variants
from dialogs.safety.screen import SafetyFinding, SafetyScreen, SafetySignal

CRISIS = SafetySignal.CRISIS
DANGER = SafetySignal.DANGER


def _signal(screen: SafetyScreen, text: str) -> SafetySignal | None:
    finding = screen.screen(text)
    return finding.signal if finding is not None else None


# ------------------------------------------------------------------ the real rules


def test_crisis_wins_when_both_signals_are_present(screen: SafetyScreen) -> None:
    assert _signal(screen, "he hit me") is DANGER
    assert _signal(screen, "he hit me and i want to die") is CRISIS
    assert _signal(screen, "i want to die, he hit me") is CRISIS


def test_findings_name_a_rule_from_the_file(screen: SafetyScreen) -> None:
    finding = screen.screen("i want to kill myself")
    assert finding == SafetyFinding(CRISIS, "crisis.kill_self")
    assert finding.rule_id in screen.rule_ids


def test_finding_is_a_frozen_slotted_value() -> None:
    finding = SafetyFinding(DANGER, "danger.x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.rule_id = "other"  # type: ignore[misc]
    assert not hasattr(finding, "__dict__")
    assert str(finding.signal) == "danger"


@pytest.mark.parametrize("text", ["", "   ", "\U0001f62d\U0001f62d", "ok", "...", "1 2 3"])
def test_empty_and_trivial_messages_are_quiet(screen: SafetyScreen, text: str) -> None:
    assert screen.screen(text) is None


@pytest.mark.parametrize(
    "who",
    [
        "he",
        "she",
        "they",
        "my partner",
        "my husband",
        "my wife",
        "my boyfriend",
        "my girlfriend",
        "my bf",
        "my ex",
        "He",
        "SHE",
    ],
)
@pytest.mark.parametrize("verb", ["hit", "hits", "punched", "slapped", "chokes", "hurts"])
def test_one_rule_covers_every_person_and_verb_form(
    screen: SafetyScreen, who: str, verb: str
) -> None:
    assert _signal(screen, f"{who} {verb} me") is DANGER


@pytest.mark.parametrize(
    "text",
    [
        "i want to die",
        "i want to just die",
        "i want to really just die",
        "i wanna fucking die",
        "i want to die",
        "i just want to die",
    ],
)
def test_small_optional_gaps(screen: SafetyScreen, text: str) -> None:
    assert _signal(screen, text) is CRISIS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("he pushed me down the stairs", DANGER),
        ("he pushed me away", None),
        ("he hit me", DANGER),
        ("he hit me up after work", None),
        ("it hit me how much i miss her", None),
        ("she hits me with the silent treatment", None),
        ("he beat me up", DANGER),
        ("he beat me at chess", None),
        ("i'm scared of him", DANGER),
        ("i'm scared of him leaving", None),
        ("i'm scared of losing her", None),
        ("i'm scared she'll leave", None),
        ("i'm scared for him", None),
        ("he's following me", DANGER),
        ("he's following me on instagram", None),
        ("i've been stalking his instagram", None),
        ("he's stalking me", DANGER),
        ("i can't go on", CRISIS),
        ("i can't go on like this", None),
        ("kms", CRISIS),
        ("we live 300 kms apart", None),
        ("i'm proud of myself", None),
        ("gonna off myself", CRISIS),
        ("she threatened to leave", None),
        ("she threatened to kill me", DANGER),
        ("he read my message and didn't reply", None),
        ("he reads all my messages", DANGER),
        ("i want to end things with him", None),
        ("i want to end it all", CRISIS),
        ("if i disappeared would he notice", None),
        ("i want to disappear", CRISIS),
    ],
)
def test_idioms_and_their_literal_twins(
    screen: SafetyScreen, text: str, expected: SafetySignal | None
) -> None:
    assert _signal(screen, text) is expected


def test_explain_lists_every_hit_with_the_matched_words(screen: SafetyScreen) -> None:
    hits = screen.explain("he hit me and i want to die")
    assert [finding.signal for finding, _ in hits][:1] == [CRISIS]
    assert {finding.signal for finding, _ in hits} == {CRISIS, DANGER}
    assert ("danger.physical_violence", "he hit me") in {(f.rule_id, w) for f, w in hits}
    assert screen.explain("we had a lovely day") == []


def _brute_force(screen: SafetyScreen, text: str) -> SafetyFinding | None:
    # Every pattern, in priority order, without the word index: what `screen`
    # must agree with. Reaches into the screen's internals on purpose.
    for pattern in screen._patterns:
        for variant in match_variants(text):
            if pattern.regex.search(f" {variant} "):
                return pattern.finding
    return None


def test_the_word_index_never_changes_the_answer(
    screen: SafetyScreen, phrases: dict[str, list[str]]
) -> None:
    for phrase in [p for items in phrases.values() for p in items]:
        assert screen.screen(phrase) == _brute_force(screen, phrase), phrase


_SALAD = """
    i he she my partner want to die kill myself hit hits me him her scared of
    not allowed suicidal kms end it all k1ll d1e cut self harm pushed away up
    threatened leave follows on instagram can't go on like this never wake sleep
    and the a really just pills all took overdose better off without
"""
_WORDS = st.sampled_from(_SALAD.split())


@settings(max_examples=300, deadline=None)
@given(st.lists(_WORDS, max_size=12).map(" ".join))
def test_the_word_index_agrees_on_random_word_salad(screen: SafetyScreen, text: str) -> None:
    assert screen.screen(text) == _brute_force(screen, text)


def test_a_very_long_message_is_screened(screen: SafetyScreen) -> None:
    filler = "he hasn't replied and I keep checking my phone. " * 400
    assert screen.screen(filler) is None
    assert _signal(screen, filler + " i want to die") is CRISIS


# ------------------------------------------------------------------ the language


def _screen_from(tmp_path: Path, body: str, slots: str = "") -> SafetyScreen:
    path = tmp_path / "signals.yaml"
    path.write_text(
        f"version: 1\nslots:\n{slots or '  none: [x]'}\nrules:\n{body}", encoding="utf-8"
    )
    return SafetyScreen.from_file(path)


def _rule(pattern: str, signal: str = "crisis", rule_id: str = "t.rule") -> str:
    head = f"  - id: {rule_id}\n    signal: {signal}\n    patterns:\n"
    return f"{head}      - {json.dumps(pattern)}\n"


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("want to die", ["i want to die now"], ["i want to dine", "die want to"]),
        ("want to [just|really] die", ["want to die", "want to just die"], ["want to so die"]),
        ("(end|take) my life", ["end my life", "take my life"], ["make my life"]),
        ("suicid*", ["suicidal", "suicide"], ["presuicidal"]),
        ("feel * today", ["feel awful today"], ["feel today", "feel so bad today"]),
        ("hit me !up", ["hit me hard", "hit me"], ["hit me up"]),
        ("go on !*", ["cant go on"], ["cant go on like this"]),
        ("!(it|that) * hit me", ["tom hit me"], ["it hit me", "that hit me"]),
        ("kill myself", ["KILL MYSELF", "kiiill myself", "kil myself", "k1ll mys3lf"], []),
        ("don't want to", ["dont want to", "don\u2019t want to"], ["do want to"]),
    ],
)
def test_pattern_language(
    tmp_path: Path, pattern: str, matches: list[str], misses: list[str]
) -> None:
    screen = _screen_from(tmp_path, _rule(pattern))
    for text in matches:
        assert screen.screen(text) is not None, text
    for text in misses:
        assert screen.screen(text) is None, text


def test_slots_can_use_other_slots(tmp_path: Path) -> None:
    slots = "  noun: [partner, wife]\n  person: [he, '(my|our) {noun}']\n"
    screen = _screen_from(tmp_path, _rule("{person} hit me", "danger"), slots)
    assert screen.screen("our wife hit me") == SafetyFinding(DANGER, "t.rule")
    assert screen.screen("my partner hit me") is not None
    assert screen.screen("my dog hit me") is None


def test_within_a_signal_the_earlier_rule_wins(tmp_path: Path) -> None:
    body = _rule("hit me", "danger", "first") + _rule("he hit", "danger", "second")
    screen = _screen_from(tmp_path, body)
    assert screen.screen("he hit me") == SafetyFinding(DANGER, "first")


def test_crisis_wins_even_when_listed_after_danger(tmp_path: Path) -> None:
    body = _rule("hit me", "danger", "d") + _rule("want to die", "crisis", "c")
    screen = _screen_from(tmp_path, body)
    assert screen.screen("he hit me and i want to die") == SafetyFinding(CRISIS, "c")
