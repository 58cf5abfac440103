"""The PostgreSQL cases skip where no server answers, and fail instead when required."""

from collections.abc import Iterator

import pytest

from tests.postgres import REQUIRE_ENV, _unreachable_reason, require_postgres

NOBODY = "postgresql+psycopg://postgres@127.0.0.1:1/test"


@pytest.fixture
def nobody_listening(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PAUSECHECK_TEST_POSTGRES_URL", NOBODY)
    _unreachable_reason.cache_clear()
    yield
    _unreachable_reason.cache_clear()


def test_an_unreachable_server_skips_with_the_reason(
    nobody_listening: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"not reachable at .*:1/test"):
        require_postgres()


def test_an_unreachable_server_fails_where_postgres_is_required(
    nobody_listening: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "1")
    # Caught by hand: a skip escaping here would pass as a skip, not fail the test.
    # (pytest's outcomes are BaseExceptions.)
    outcome: BaseException | None = None
    try:
        require_postgres()
    except BaseException as exc:
        outcome = exc
    assert isinstance(outcome, pytest.fail.Exception), outcome
    assert "not reachable" in str(outcome)
