# Two commands set everything up: `make chat` talks to the guide, `make test` runs the tests.
# Both create ./.venv and install the project into it on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: chat test lint typecheck check content-check transcripts bench soak clean

# The pip and setuptools a new venv starts with are whatever the Python came with, and
# older ones carry known CVEs (setuptools before 70: CVE-2024-6345): upgrade both first.
$(STAMP): pyproject.toml constraints.txt Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

chat: $(STAMP)
	$(BIN)/pausecheck console

# Two processes (pytest-xdist), each taking the next test as it finishes one, the longest
# first (--dist loadgroup; tests marked xdist_group share a process, one after another):
# about 6 to 7 minutes on 2 cores against 16 in one process. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy dialogs storage bot soak bench tests

content-check: $(STAMP)
	$(BIN)/pausecheck content check

# Rewrites docs/transcripts/ from the flows; a test fails while they are stale.
transcripts: $(STAMP)
	$(BIN)/pausecheck content transcript --write-docs

check: lint typecheck content-check test

# About 7 minutes on 2 cores. Issue 14's tables: (a)-(c) from telegram_throughput, (d)
# from followups_wave. BENCH_QUICK=1 runs those two small (about 2 minutes).
BENCH_QUICK ?=
bench: $(STAMP)
	$(BIN)/python -m bench.safety_eval
	$(BIN)/python -m bench.understanding
	$(BIN)/python -m bench.engine_turns
	$(BIN)/python -m bench.followups_wave $(if $(BENCH_QUICK),--quick,--window 60 --dispatch-seconds 20)
	$(BIN)/python -m bench.telegram_throughput $(if $(BENCH_QUICK),--quick)
	$(BIN)/python -m bench.partner_signal
	$(BIN)/python -m bench.gateway_failover $(if $(BENCH_QUICK),--kills 2)
	$(BIN)/python -m bench.workers $(if $(BENCH_QUICK),--quick)
	$(BIN)/python -m bench.webhook_inbox $(if $(BENCH_QUICK),--quick)
	$(BIN)/python -m bench.pg_drivers $(if $(BENCH_QUICK),--people 30 --followups 300 --rounds 1)

# The soak harness (docs/reliability.md): people, kill -9s and network faults against the
# real `pausecheck run`; MINUTES=30 for a longer one. Exits non-zero on any violation.
# POSTGRES=1: WORKERS (3) webhook workers on a fresh schema of the test PostgreSQL.
MINUTES ?= 10
POSTGRES ?=
WORKERS ?= 3
soak: $(STAMP)
	$(BIN)/python -m soak --minutes $(MINUTES) $(if $(POSTGRES),--postgres --workers $(WORKERS))

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
