"""Acting, asking, and the separate safety concern."""

from __future__ import annotations

import pytest

from dialogs.understanding import Confident, FallbackPolicy, Reading, Unsure, safety_concern


def _reading(*ranking: tuple[str, float]) -> Reading:
    return Reading(ranking[0][0], ranking[0][1], ranking)


POLICY = FallbackPolicy(threshold=0.5, ambiguity_gap=0.2, concern_threshold=0.2)


def test_a_likely_and_clear_top_intent_is_acted_on() -> None:
    assert POLICY.decide(_reading(("space", 0.7), ("talk", 0.2), ("pause", 0.1))) == Confident(
        "space"
    )


def test_exactly_at_the_threshold_and_gap_counts_as_confident() -> None:
    assert POLICY.decide(_reading(("talk", 0.5), ("space", 0.3), ("pause", 0.2))) == Confident(
        "talk"
    )


def test_a_low_top_intent_asks_with_the_likeliest_choices() -> None:
    reading = _reading(("talk", 0.4), ("space", 0.15), ("role", 0.12), ("cycle", 0.11))
    assert POLICY.decide(reading) == Unsure(("talk", "space", "role"))


def test_two_close_intents_ask_even_when_both_are_likely() -> None:
    reading = _reading(("space", 0.55), ("talk", 0.4), ("pause", 0.05))
    # The third is too unlikely to be worth a button.
    assert POLICY.decide(reading) == Unsure(("space", "talk"))


def test_out_of_scope_is_never_offered_as_a_choice_but_can_be_confident() -> None:
    unsure = _reading(("out_of_scope", 0.35), ("bot", 0.3), ("greeting", 0.2), ("talk", 0.15))
    assert POLICY.decide(unsure) == Unsure(("bot", "greeting", "talk"))
    sure = _reading(("out_of_scope", 0.9), ("bot", 0.1))
    assert POLICY.decide(sure) == Confident("out_of_scope")


def test_max_candidates_limits_the_buttons() -> None:
    policy = FallbackPolicy(threshold=0.9, max_candidates=2)
    reading = _reading(("talk", 0.3), ("space", 0.3), ("role", 0.3), ("cycle", 0.1))
    assert policy.decide(reading) == Unsure(("talk", "space"))


def test_safety_concern_looks_below_the_top() -> None:
    reading = _reading(("pause", 0.6), ("crisis", 0.25), ("talk", 0.15))
    assert safety_concern(reading, threshold=0.2) == "crisis"
    assert safety_concern(reading, threshold=0.3) is None
    assert POLICY.safety_concern(reading) == "crisis"


def test_safety_concern_prefers_the_safety_intent_not_already_on_top() -> None:
    danger_first = _reading(("danger", 0.45), ("crisis", 0.35), ("pause", 0.2))
    assert safety_concern(danger_first, threshold=0.2) == "crisis"
    assert safety_concern(danger_first, threshold=0.4) == "danger"
    crisis_first = _reading(("crisis", 0.45), ("danger", 0.35), ("pause", 0.2))
    assert safety_concern(crisis_first, threshold=0.2) == "danger"
    # Neither on top: crisis is asked about first.
    neither = _reading(("pause", 0.4), ("danger", 0.31), ("crisis", 0.29))
    assert safety_concern(neither, threshold=0.2) == "crisis"
    assert safety_concern(_reading(("greeting", 0.95), ("danger", 0.05)), threshold=0.2) is None


def test_a_reading_with_one_intent_is_confident_when_likely() -> None:
    assert POLICY.decide(_reading(("thanks", 1.0))) == Confident("thanks")


@pytest.mark.parametrize(
    "arguments",
    [
        {"threshold": 1.5},
        {"ambiguity_gap": -0.1},
        {"concern_threshold": 2.0},
        {"max_candidates": 1},
    ],
)
def test_nonsense_settings_are_refused(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FallbackPolicy(**arguments)  # type: ignore[arg-type]
