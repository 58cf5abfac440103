"""The follow-up claims this process holds, so that a graceful stop can give them back.

A follow-up row says when it was claimed, not by whom, so the store remembers each
claim it made: the time and the ids. Releasing one is conditional on the row being
still CLAIMED at that very time: a claim another worker has taken over since (after
the lease) carries another time and is left alone. Claims older than `KEEP` are
forgotten: by then another worker's `recover` has taken them back anyway.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_

from storage.models import FollowUpRow

KEEP = timedelta(hours=1)


class HeldClaims:
    def __init__(self) -> None:
        self._claims: dict[datetime, list[int]] = {}

    def add(self, claimed_at: datetime, ids: Sequence[int]) -> None:
        for old in [at for at in self._claims if at < claimed_at - KEEP]:
            del self._claims[old]
        self._claims.setdefault(claimed_at, []).extend(ids)

    def __iter__(self) -> Iterator[tuple[datetime, list[int]]]:
        return iter(self._claims.items())

    def clear(self) -> None:
        self._claims.clear()

    def condition(self) -> ColumnElement[bool] | None:
        """Rows still held under one of our claims (None: we hold none)."""
        if not self._claims:
            return None
        return or_(
            *(
                (FollowUpRow.claimed_at == at) & FollowUpRow.id.in_(ids)
                for at, ids in self._claims.items()
            )
        )
