"""bot.logs: the redacting filter and the levels, on the shapes the libraries log."""

from __future__ import annotations

import json
import logging

from bot.logs import RedactingFilter, configure_logging, redact
from tests.logging_capture import restored_logging

TELEGRAM_TOKEN = "7012345678:AAH3kd8sPq0xZl1mNq2rStUvWxYz0123456"
DISCORD_TOKEN = "MTA5ODc2NTQzMjEwOTg3NjU0.GhIjKl.abcdefghijklmnopqrstuvwxyz0123456789AB"
TYPED = "I keep checking his phone when he's asleep"


def logged(template: str, *args: object) -> str:
    """The line a library's `log.debug(template, *args)` produces."""
    return logging.LogRecord("lib", logging.DEBUG, __file__, 1, template, args, None).getMessage()


def test_tokens_are_redacted_by_shape_even_when_not_configured() -> None:
    url = f"https://api.telegram.org/bot{TELEGRAM_TOKEN}/getUpdates"
    assert TELEGRAM_TOKEN not in redact(url)
    assert DISCORD_TOKEN not in redact(f"Authorization: Bot {DISCORD_TOKEN}")


def test_configured_secrets_are_redacted_whatever_their_shape() -> None:
    assert redact("key=hunter2 here", ["hunter2"]) == "key=[secret] here"


def test_ptb_debug_lines_lose_the_message_text() -> None:
    # telegram/_bot.py: "Calling Bot API endpoint `%s` with parameters `%s`" and the
    # CRITICAL "Error while parsing updates! Received data was %r".
    params = {"chat_id": 5, "text": TYPED, "reply_markup": None}
    line = logged("Calling Bot API endpoint `%s` with parameters `%s`", "sendMessage", params)
    result = [{"update_id": 1, "message": {"text": TYPED, "from": {"first_name": "Sam"}}}]
    critical = logged("Error while parsing updates! Received data was %r", result)
    for text in (line, critical):
        cleaned = redact(text)
        assert TYPED not in cleaned and "Sam" not in cleaned
        assert "[text]" in cleaned
    # A repr of a PTB object, with quotes inside the text.
    cleaned = redact("Update(message=Message(text=\"he said 'fine' and left\", chat_id=5))")
    assert "fine" not in cleaned


def test_discord_debug_lines_lose_the_message_content() -> None:
    # discord/gateway.py: 'For Shard ID %s: WebSocket Event: %s', and discord/http.py:
    # '%s %s with %s has returned %s' (the JSON body of a request).
    event = {"t": "MESSAGE_CREATE", "d": {"content": TYPED, "author": {"username": "sam"}}}
    gateway = logged("For Shard ID %s: WebSocket Event: %s", None, event)
    body = json.dumps({"content": TYPED, "embeds": []})
    http = logged("%s %s with %s has returned %s", "POST", "https://x/c/1/messages", body, 200)
    for text in (gateway, http):
        cleaned = redact(text)
        assert TYPED not in cleaned
        assert "sam" not in cleaned


def test_the_filter_redacts_arguments_and_tracebacks() -> None:
    record = logging.LogRecord(
        "telegram.ext.Updater", logging.ERROR, __file__, 1, "token %s", (TELEGRAM_TOKEN,), None
    )
    try:
        raise RuntimeError(f"The token `{TELEGRAM_TOKEN}` was rejected by the server.")
    except RuntimeError as exc:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    assert RedactingFilter().filter(record)
    formatted = logging.Formatter("%(message)s").format(record)
    assert TELEGRAM_TOKEN not in formatted
    assert "rejected by the server" in formatted


def test_the_guides_level_does_not_open_the_libraries() -> None:
    with restored_logging() as buffer:
        configure_logging("DEBUG", stream=buffer, force=True)
        logging.getLogger("telegram.ext.ExtBot").debug("library detail")
        logging.getLogger("discord.gateway").debug("library detail")
        logging.getLogger("bot.telegram.adapter").debug("our detail")
        logging.getLogger("storage.engine").debug("our detail too")
        log = buffer.getvalue()
    assert "library detail" not in log
    assert "our detail" in log and "our detail too" in log


def test_every_root_handler_gets_the_filter() -> None:
    with restored_logging() as buffer:
        other = logging.StreamHandler(buffer)
        logging.getLogger().addHandler(other)
        configure_logging("INFO", stream=buffer, secrets=["hunter2"], force=True)
        logging.getLogger("bot").warning("password hunter2")
        logging.getLogger().removeHandler(other)
        log = buffer.getvalue()
    assert "hunter2" not in log
    assert log.count("password [secret]") == 2


def test_a_host_that_set_up_logging_is_left_alone() -> None:
    """Like basicConfig: the CLI run in-process (a test runner, an embedding app)
    changes no levels and adds no handler where logging is set up already."""
    with restored_logging() as buffer:
        logging.getLogger().addHandler(logging.StreamHandler(buffer))
        level = logging.getLogger("dialogs").level
        assert configure_logging("WARNING") is None
        assert logging.getLogger("dialogs").level == level
