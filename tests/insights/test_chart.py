"""The chart: what it shows (a plain description), and the PNG drawn from it."""

from __future__ import annotations

import io
import struct
from datetime import time
from zoneinfo import ZoneInfo

import pytest

from dialogs.content import Content
from dialogs.delivery import Reply
from dialogs.events import Outbound
from dialogs.insights import drawing
from dialogs.insights.chart import Chart, chart
from dialogs.insights.drawing import AFTER_COLOUR, BEFORE_COLOUR, draw_png, drawn
from dialogs.insights.numbers import compute
from dialogs.insights.words import InsightsCopy
from tests.insights.journal import NOW, three_weeks, two_pauses

LONDON = ZoneInfo("Europe/London")
QUIET = (time(22, 0), time(8, 0))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def words(content: Content) -> InsightsCopy:
    assert content.insights is not None
    return content.insights


def chart_of(content: Content, entries: list) -> Chart | None:  # type: ignore[type-arg]
    return chart(compute(entries, NOW, LONDON, QUIET), words(content))


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the PNG header: the IHDR chunk comes first."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_with_a_trend_the_weeks_carry_the_middle_values(content: Content) -> None:
    spec = chart_of(content, three_weeks())
    assert spec is not None and not spec.early
    assert spec.title == "Your pauses"
    assert spec.week_labels == ("16 Nov", "23 Nov", "30 Nov")
    assert spec.pauses_per_week == (2, 2, 1)
    assert spec.loudness_labels == spec.week_labels
    assert spec.before == (7.0, 5.5, 7.0)
    assert spec.after == (3.5, 2.0, 3.0)


def test_two_pauses_are_shown_one_by_one_and_called_too_early(content: Content) -> None:
    spec = chart_of(content, two_pauses())
    assert spec is not None and spec.early
    assert spec.title == "Too early to see a trend"
    assert spec.loudness_x_axis == "Each pause"
    assert spec.loudness_labels == ("1", "2")
    assert spec.before == (9.0, 6.0)
    assert spec.after == (4.0, None)


def test_no_pauses_no_chart(content: Content) -> None:
    assert chart_of(content, []) is None


@pytest.mark.parametrize("journal", [three_weeks, two_pauses])
def test_the_png_decodes_at_phone_size_in_two_colours(content: Content, journal) -> None:  # type: ignore[no-untyped-def]
    spec = chart_of(content, journal())
    assert spec is not None
    data = draw_png(spec)
    assert png_size(data) == (960, 1200)
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()  # decodes every pixel, or raises
    assert image.size == (960, 1200)
    colours = {rgb for _, rgb in image.convert("RGB").getcolors(maxcolors=1 << 20) or []}
    for wanted in (BEFORE_COLOUR, AFTER_COLOUR):
        assert tuple(int(wanted[i : i + 2], 16) for i in (1, 3, 5)) in colours


async def test_drawn_turns_a_chart_into_an_image_attachment(content: Content) -> None:
    spec = chart_of(content, two_pauses())
    reply = await drawn(Reply([Outbound("before"), Outbound("words", chart=spec)]))
    first, second = reply
    assert first == Outbound("before")
    assert second.chart is None and second.attachment is not None
    assert second.attachment.media_type == "image/png" and second.attachment.is_image
    assert second.attachment.filename.endswith(".png")
    assert second.attachment.description == words(content).chart_description
    assert png_size(second.attachment.data) == (960, 1200)


async def test_a_chart_that_cannot_be_drawn_leaves_the_words(
    content: Content, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(chart: Chart) -> bytes:
        raise RuntimeError("no fonts")

    monkeypatch.setattr(drawing, "draw_png", broken)
    spec = chart_of(content, two_pauses())
    [message] = await drawn(Reply([Outbound("words", chart=spec)]))
    assert message == Outbound("words")
