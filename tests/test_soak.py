"""The short soak: a minute of simulated people on the real `pausecheck run`, killed
with SIGKILL three times and under random network trouble, then every promise of
docs/reliability.md checked (soak/checks.py). `make soak` runs the long one."""

from __future__ import annotations

from pathlib import Path

from soak.report import table
from soak.run import Options, Soak


async def test_a_minute_of_people_kills_and_faults_breaks_no_promise(tmp_path: Path) -> None:
    options = Options(minutes=1.0, kills=3, people=8, seed=15, workdir=tmp_path)
    result = await Soak(options).run()
    report = table(result, options)
    print(report)
    figures = result.verdict.figures
    # The run did what it says: people acted, the guide was killed, faults were met.
    assert figures["kills"] == 3, report
    assert int(figures["events"]) > 100, report
    assert int(figures["faults"]) > 10, report
    assert result.verdict.violations == [], report
