"""The table a run prints."""

from __future__ import annotations

from soak.run import Options, Result

# The table's columns, in the order the issue asks for, then the details.
MAIN = ("kills", "faults", "events", "follow-ups", "sent", "missed", "duplicates", "violations")
DETAILS = (
    "kills in the window",
    "in crash windows",
    "fault kinds",
    "cancelled",
    "not yet due",
    "follow-up messages dropped",
    "outbox rows",
    "outbox dropped/superseded",
    "updates fetched again",
)


def table(result: Result, options: Options) -> str:
    f = result.verdict.figures
    head = "| " + " | ".join(MAIN) + " |"
    rule = "|" + "|".join("---:" for _ in MAIN) + "|"
    values = "| " + " | ".join(str(f.get(k, "")) for k in MAIN) + " |"
    lines = [
        f"soak: {options.minutes:g} min, {options.people} people, seed {options.seed}, "
        f"clock x{options.clock_scale:g}, {result.workdir}",
        "",
        head,
        rule,
        values,
        "",
    ]
    lines += [f"  {k}: {f.get(k, '')}" for k in DETAILS]
    if result.verdict.violations:
        lines += ["", "violations:"]
        lines += [f"  {v}" for v in result.verdict.violations[:200]]
        if len(result.verdict.violations) > 200:
            lines.append(f"  ... and {len(result.verdict.violations) - 200} more")
    return "\n".join(lines)
