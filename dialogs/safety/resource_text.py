"""Helplines as one short chat message, for the `{resources}` slot of safety flows."""

from __future__ import annotations

from dialogs.safety.resources import CountryResources, HelpLine, SafetyResources

# Shown when the person's country is not known yet: the countries most users are in,
# then the worldwide directory.
OVERVIEW = ("US", "GB", "IE", "CA", "AU", "INTL")


def resource_text(resources: SafetyResources, signal: str, country: str | None = None) -> str:
    """Helplines for `signal` ("crisis" or "danger"), for one country when known;
    for "emergency", just the emergency number to call."""
    if signal == "emergency":
        return emergency_text(resources, country)
    if country is not None:
        return _country_line(resources.for_country(country), signal)
    seen: set[str] = set()
    lines: list[str] = []
    for code in OVERVIEW:
        entry = resources.for_country(code)
        if entry.code in seen:
            continue
        seen.add(entry.code)
        lines.append("• " + _country_line(entry, signal))
    return "\n".join(lines)


def _country_line(entry: CountryResources, signal: str) -> str:
    helplines: tuple[HelpLine, ...] = entry.crisis_lines if signal == "crisis" else entry.dv_lines
    # One service reachable several ways reads as one entry: "call 988 or text 988".
    by_service: dict[str, list[str]] = {}
    for line in helplines:
        by_service.setdefault(line.name, []).append(line.instruction)
    ways = "; ".join(
        f"{name}: " + " or ".join([how[0], *(h[0].lower() + h[1:] for h in how[1:])])
        for name, how in by_service.items()
    )
    where = "Elsewhere" if entry.code == "INTL" else entry.name[0].upper() + entry.name[1:]
    return f"{where}: {ways}. Emergency: {entry.emergency}."


def emergency_text(resources: SafetyResources, country: str | None = None) -> str:
    """The number to call in immediate danger, fit to follow "call": the person's own
    when their country is known, else the common ones by country, briefly."""
    if country is not None:
        entry = resources.for_country(country)
        if entry.code != "INTL":
            return entry.emergency
    by_number: dict[str, list[str]] = {}
    for code in OVERVIEW:
        entry = resources.for_country(code)
        if entry.code == "INTL" or not entry.emergency[:1].isdigit():
            continue
        by_number.setdefault(entry.emergency, []).append(_short_name(entry))
    # 112 works across the European Union, not only in the listed countries.
    by_number.setdefault("112", []).append("most of Europe")
    known = ", ".join(f"{number} in {' and '.join(names)}" for number, names in by_number.items())
    return f"your local emergency number ({known})"


def _short_name(entry: CountryResources) -> str:
    return {"US": "the US", "GB": "the UK"}.get(entry.code, entry.name)
