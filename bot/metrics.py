"""The guide's metrics, in Prometheus' text format (prometheus-client).

Counters and the lateness histogram count what this process did since it started
(Prometheus adds the workers up: `sum(rate(...))`). The gauges read from the
database at each scrape (`refresh`) are the same on every worker: take their
`max`, not their sum. Each guide has its own registry, so several in one process
(tests) never share counts.

`METRICS` names them all; docs/deploy.md lists the same (tests/test_ops_http.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.gauges import backlog

log = logging.getLogger(__name__)

# Without them each counter has a second series of its start time, as a gauge: noise
# on every dashboard for what `process_start_time_seconds` would say.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = CONTENT_TYPE_LATEST
# A scrape must answer even when the database does not: its gauges then keep their
# last values and `pausecheck_database_up` says 0.
REFRESH_SECONDS = 5.0
# Follow-up lateness, due time to rendered for sending: the goal is p99 under 2 s.
LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

# Every metric's full name and type, as the text format shows it.
METRICS = {
    "pausecheck_events_total": "counter",
    "pausecheck_messages_sent_total": "counter",
    "pausecheck_followups_total": "counter",
    "pausecheck_followup_lateness_seconds": "histogram",
    "pausecheck_followups_due": "gauge",
    "pausecheck_outbox_pending": "gauge",
    "pausecheck_outbox_queued": "gauge",
    "pausecheck_database_up": "gauge",
}


class Metrics:
    """Implements `dialogs.observer.Observer` for the engine."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter(
            "pausecheck_events",
            "Inbound events (messages, taps, commands) by outcome: handled, duplicate "
            "(a redelivery, changed nothing) or failed (answered with an apology).",
            ["platform", "outcome"],
            registry=r,
        )
        self.sent = Counter(
            "pausecheck_messages_sent",
            "Messages the platform accepted, by lane: reply (to something a person just "
            "did) or scheduled (follow-ups, timers, waves).",
            ["platform", "lane"],
            registry=r,
        )
        self.followups = Counter(
            "pausecheck_followups",
            "Due follow-ups handled, by outcome: delivered, postponed (busy or quiet "
            "hours), missed (past their limit) or skipped (cancelled, held back).",
            ["platform", "outcome"],
            registry=r,
        )
        self.lateness = Histogram(
            "pausecheck_followup_lateness_seconds",
            "Seconds from a follow-up's due time to its messages being queued to send.",
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.due = Gauge(
            "pausecheck_followups_due",
            "Pending follow-ups whose due time has passed (all workers; read from the "
            "database at each scrape).",
            registry=r,
        )
        self.outbox_pending = Gauge(
            "pausecheck_outbox_pending",
            "Outbox rows not yet sent (all workers; read from the database at each scrape).",
            registry=r,
        )
        self.queued = Gauge(
            "pausecheck_outbox_queued",
            "Messages waiting in this process's outbox for their turn under the rate caps.",
            ["platform"],
            registry=r,
        )
        self.database_up = Gauge(
            "pausecheck_database_up",
            "1 if the database answered this scrape's queries, else 0.",
            registry=r,
        )
        self._queues: dict[str, Callable[[], int]] = {}

    # The engine's observer.

    def event(self, platform: str, outcome: str) -> None:
        self.events.labels(platform, outcome).inc()

    def followup(self, platform: str, outcome: str, late_seconds: float | None) -> None:
        self.followups.labels(platform, outcome).inc()
        if late_seconds is not None:
            self.lateness.observe(late_seconds)

    # The outboxes.

    def sent_on(self, platform: str) -> Callable[[bool], None]:
        """For `Outbox.on_sent`: count one accepted message (True for a reply)."""
        replies = self.sent.labels(platform, "reply")
        scheduled = self.sent.labels(platform, "scheduled")

        def count(reply: bool) -> None:
            (replies if reply else scheduled).inc()

        return count

    def watch_queue(self, platform: str, size: Callable[[], int]) -> None:
        self._queues[platform] = size

    # A scrape.

    async def refresh(self, engine: AsyncEngine, now: datetime) -> None:
        for platform, size in self._queues.items():
            self.queued.labels(platform).set(size())
        try:
            async with asyncio.timeout(REFRESH_SECONDS):
                counts = await backlog(engine, now)
        except Exception as exc:
            log.warning("metrics: the database did not answer error=%s", type(exc).__name__)
            self.database_up.set(0)
            return
        self.database_up.set(1)
        self.due.set(counts.followups_due)
        self.outbox_pending.set(counts.outbox_pending)

    def render(self) -> bytes:
        return generate_latest(self.registry)
