"""`SafetyResources`: the right lines per country, and INTL for everyone else."""

from __future__ import annotations

import pytest

from dialogs.safety.resources import (
    FALLBACK_CODE,
    CountryResources,
    HelpLine,
    SafetyResources,
)


def _instructions(lines: tuple[HelpLine, ...]) -> list[str]:
    return [line.instruction for line in lines]


@pytest.mark.parametrize("code", [None, "", "  ", "FR", "zz", "XYZ", "united states"])
def test_unknown_or_missing_country_falls_back_to_intl(
    helplines: SafetyResources, code: str | None
) -> None:
    country = helplines.for_country(code)
    assert country.code == FALLBACK_CODE
    assert country.emergency == "your local emergency number"
    assert any("findahelpline.com" in (line.url or "") for line in country.crisis_lines)
    assert any("hotpeachpages.net" in (line.url or "") for line in country.dv_lines)


@pytest.mark.parametrize(
    ("code", "expected"),
    [("us", "US"), ("Us", "US"), (" gb ", "GB"), ("uk", "GB"), ("UK", "GB"), ("ie", "IE")],
)
def test_lookup_ignores_case_and_knows_aliases(
    helplines: SafetyResources, code: str, expected: str
) -> None:
    assert helplines.for_country(code).code == expected


def test_united_states(helplines: SafetyResources) -> None:
    us = helplines.for_country("US")
    assert us.emergency == "911"
    assert _instructions(us.crisis_lines) == ["Call 988", "Text 988", "Text HOME to 741741"]
    assert _instructions(us.dv_lines) == ["Call 1-800-799-7233", "Text START to 88788"]
    assert us.dv_lines[0].name == "The National Domestic Violence Hotline"


def test_united_kingdom_and_ireland(helplines: SafetyResources) -> None:
    gb = helplines.for_country("GB")
    assert gb.emergency == "999"
    assert [(x.name, x.number) for x in gb.crisis_lines] == [("Samaritans", "116 123")]
    assert _instructions(gb.dv_lines) == ["Call 0808 2000 247"]

    ie = helplines.for_country("IE")
    assert (ie.emergency, ie.emergency_also) == ("112", ("999",))
    assert [(x.name, x.number) for x in ie.crisis_lines] == [("Samaritans", "116 123")]
    assert [(x.name, x.number) for x in ie.dv_lines] == [("Women's Aid", "1800 341 900")]


def test_canada_and_australia(helplines: SafetyResources) -> None:
    ca = helplines.for_country("CA")
    assert ca.emergency == "911"
    assert _instructions(ca.crisis_lines) == ["Call 988", "Text 988"]
    assert _instructions(ca.dv_lines) == ["Visit sheltersafe.ca"]

    au = helplines.for_country("AU")
    assert au.emergency == "000"
    assert [(x.name, x.number) for x in au.crisis_lines] == [("Lifeline", "13 11 14")]
    assert [(x.name, x.number) for x in au.dv_lines] == [("1800RESPECT", "1800 737 732")]


def test_every_country_has_both_kinds_of_line(helplines: SafetyResources) -> None:
    assert helplines.codes >= {"US", "GB", "UK", "IE", "CA", "AU", "INTL"}
    for code in helplines.codes:
        country = helplines.for_country(code)
        assert isinstance(country, CountryResources)
        assert country.crisis_lines and country.dv_lines
        assert country.emergency


def test_no_numbers_beyond_the_agreed_list(helplines: SafetyResources) -> None:
    # Every number in the file was checked against the service; anything new must be
    # checked the same way before it is added here.
    agreed = {
        "911", "999", "112", "000", "988", "741741", "1-800-799-7233", "88788",
        "116 123", "0808 2000 247", "1800 341 900", "13 11 14", "1800 737 732",
    }  # fmt: skip
    seen = set()
    for code in helplines.codes:
        country = helplines.for_country(code)
        seen.add(country.emergency)
        seen.update(country.emergency_also)
        for line in country.crisis_lines + country.dv_lines:
            if line.number is not None:
                seen.add(line.number)
    assert seen - {"your local emergency number"} == agreed


def test_help_line_wording() -> None:
    assert HelpLine(name="A", how="call", number="116 123").instruction == "Call 116 123"
    assert HelpLine(name="A", how="text", number="988").instruction == "Text 988"
    text = HelpLine(name="A", how="text", number="741741", keyword="HOME")
    assert text.instruction == "Text HOME to 741741"
    web = HelpLine(name="A", how="web", url="https://www.example.org/")
    assert web.instruction == "Visit example.org"


def test_resources_are_immutable(helplines: SafetyResources) -> None:
    with pytest.raises(ValueError):
        helplines.for_country("US").emergency = "000"  # type: ignore[misc]


def test_a_table_without_intl_is_refused() -> None:
    with pytest.raises(ValueError, match="INTL"):
        SafetyResources({})
