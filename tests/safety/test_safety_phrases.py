"""The labelled phrase set: full recall on crisis and danger, few false alarms."""

from __future__ import annotations

from dialogs.safety.screen import SafetyScreen, SafetySignal

# A false alarm costs one gentle extra message; this keeps them rare.
MAX_FALSE_ALARM_RATE = 0.05


def _listing(lines: list[str]) -> str:
    return "\n  " + "\n  ".join(lines)


def test_the_phrase_set_is_big_enough_and_has_no_repeats(phrases: dict[str, list[str]]) -> None:
    assert set(phrases) == {"crisis", "danger", "ordinary"}
    assert len(phrases["crisis"]) >= 80
    assert len(phrases["danger"]) >= 50
    assert len(phrases["ordinary"]) >= 80
    everything = [p.casefold() for items in phrases.values() for p in items]
    repeats = sorted({p for p in everything if everything.count(p) > 1})
    assert repeats == [], f"phrases listed twice:{_listing(repeats)}"


def test_every_crisis_phrase_is_screened_as_crisis(
    screen: SafetyScreen, phrases: dict[str, list[str]]
) -> None:
    misses = []
    for phrase in phrases["crisis"]:
        finding = screen.screen(phrase)
        if finding is None or finding.signal is not SafetySignal.CRISIS:
            misses.append(f"{phrase!r} -> {finding}")
    assert misses == [], f"{len(misses)} crisis phrases missed:{_listing(misses)}"


def test_every_danger_phrase_is_screened(
    screen: SafetyScreen, phrases: dict[str, list[str]]
) -> None:
    misses = [phrase for phrase in phrases["danger"] if screen.screen(phrase) is None]
    assert misses == [], f"{len(misses)} danger phrases missed:{_listing(misses)}"


def test_danger_phrases_mostly_land_on_danger_not_crisis(
    screen: SafetyScreen, phrases: dict[str, list[str]]
) -> None:
    # Crisis outranks danger, so overlap is allowed, but the danger set is about
    # other people's harm and should route to the danger flow almost always.
    as_crisis = [
        phrase
        for phrase in phrases["danger"]
        if (finding := screen.screen(phrase)) is not None and finding.signal is SafetySignal.CRISIS
    ]
    assert len(as_crisis) <= len(phrases["danger"]) // 20, _listing(as_crisis)


def test_ordinary_messages_rarely_raise_an_alarm(
    screen: SafetyScreen, phrases: dict[str, list[str]]
) -> None:
    ordinary = phrases["ordinary"]
    fired = [
        f"{phrase!r} -> {finding.signal}/{finding.rule_id}"
        for phrase in ordinary
        if (finding := screen.screen(phrase)) is not None
    ]
    rate = len(fired) / len(ordinary)
    assert rate < MAX_FALSE_ALARM_RATE, (
        f"false-alarm rate {rate:.1%} on {len(ordinary)} ordinary messages:{_listing(fired)}"
    )


def test_every_rule_is_exercised_by_some_phrase(
    screen: SafetyScreen, phrases: dict[str, list[str]]
) -> None:
    # A rule nobody tests can silently stop matching after an edit.
    exercised = {
        finding.rule_id
        for phrase in phrases["crisis"] + phrases["danger"]
        for finding, _ in screen.explain(phrase)
    }
    assert sorted(screen.rule_ids - exercised) == []
