"""The soak harness: the real `pausecheck run` against the fake Bot API, killed with
SIGKILL while simulated people use it, under injected network trouble; at the end
every promise of docs/reliability.md is checked from the database and the fake's
record of every call.

`python -m soak --minutes 10` (or `make soak`); `tests/test_soak.py` runs a short one.
The parts: `guide.py` (the process under test), `people.py` (who uses it),
`run.py` (the run: people, kills, weather, drain), `checks.py` (the verdict),
`report.py` (the table).
"""
