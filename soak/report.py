"""The table a run prints."""

from __future__ import annotations

from soak.run import Options, Result

# The table's columns, in the order the issue asks for, then the details.
MAIN = ("kills", "faults", "events", "follow-ups", "sent", "missed", "duplicates", "violations")
DETAILS = (
    "restarts",
    "kills in the window",
    "in crash windows",
    "fault kinds",
    "cancelled",
    "not yet due",
    "follow-up messages dropped",
    "outbox rows",
    "outbox dropped/superseded",
    "updates fetched again",
    "wave",
    "wave busiest second",
    "wave seconds widened by a stall",
    "loop stalls",
    "wave lateness p50/p99/max",
)


def table(result: Result, options: Options) -> str:
    f = result.verdict.figures
    head = "| " + " | ".join(MAIN) + " |"
    rule = "|" + "|".join("---:" for _ in MAIN) + "|"
    values = "| " + " | ".join(str(f.get(k, "")) for k in MAIN) + " |"
    shape = (
        f"{options.workers} webhook workers on PostgreSQL"
        if options.webhook
        else "1 process polling on SQLite"
    )
    lines = [
        f"soak: {options.minutes:g} min, {options.people} people, seed {options.seed}, "
        f"clock x{options.clock_scale:g}, {shape}, {result.workdir}",
        "",
        head,
        rule,
        values,
        "",
    ]
    lines += [f"  {k}: {f[k]}" for k in DETAILS if k in f]
    if result.verdict.violations:
        lines += ["", "violations:"]
        lines += [f"  {v}" for v in result.verdict.violations[:200]]
        if len(result.verdict.violations) > 200:
            lines.append(f"  ... and {len(result.verdict.violations) - 200} more")
    return "\n".join(lines)
