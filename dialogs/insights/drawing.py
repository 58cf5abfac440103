"""Drawing a `Chart` as a PNG, after the turn that asked for it has committed.

The engine's turn holds the person's transaction (on SQLite, the one writer), so
it only describes the chart (`Outbound.chart`); `drawn` turns that into an image
attachment once the transaction is over, in a worker thread so the event loop keeps
serving everyone else. matplotlib is imported here, inside `draw_png`, the first
time a chart is drawn: start-up never pays for it (tests/test_boundaries.py).

The picture is made for a phone held upright: 960 by 1200 pixels, large type, two
colours (blue and orange, told apart with most colour blindness), labelled axes, no
grid, box or shadow.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import replace

from dialogs.delivery import Reply
from dialogs.events import Attachment, Outbound
from dialogs.insights.chart import Chart

log = logging.getLogger(__name__)

WIDTH_PX = 960
HEIGHT_PX = 1200
DPI = 160
BEFORE_COLOUR = "#1f5fa8"
AFTER_COLOUR = "#d9730d"
INK = "#222222"
TITLE_SIZE = 22
LABEL_SIZE = 15
TICK_SIZE = 13
MARGINS = {"left": 0.14, "right": 0.93, "top": 0.91, "bottom": 0.085, "hspace": 0.62}
# How much of its slot a bar fills.
BAR_SHARE = 0.7
# At most this many labelled ticks on a time axis.
MAX_TICKS = 6
# An axis has room for at least this many bars, so one bar is not a wall of colour.
MIN_SLOTS = 4
# Weekly lines mark each week with a dot only up to this many weeks.
MAX_DOTS = 16

# matplotlib's font cache and global state are not made for several threads at once.
_drawing = threading.Lock()


def draw_png(chart: Chart) -> bytes:
    """The chart as PNG bytes (WIDTH_PX by HEIGHT_PX)."""
    # The Agg canvas draws to memory: no display, no pyplot, no global backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    with _drawing:
        figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
        FigureCanvasAgg(figure)
        top, bottom = figure.subplots(2, 1, height_ratios=(2, 3))
        # Fixed margins, sized for the type below: a layout engine would cost more
        # than the drawing itself.
        figure.subplots_adjust(**MARGINS)
        figure.suptitle(chart.title, fontsize=TITLE_SIZE, color=INK, fontweight="bold")

        weeks = range(len(chart.week_labels))
        # A year is 52 bars: drawn as one collection of thick lines, not 52 patches
        # (a third of the drawing time otherwise).
        slot_points = _panel_width_inches() / max(len(weeks), MIN_SLOTS) * 72
        top.vlines(
            weeks,
            0,
            chart.pauses_per_week,
            colors=BEFORE_COLOUR,
            linewidth=BAR_SHARE * slot_points,
            capstyle="butt",
        )
        top.set_ylim(0, max(1, *chart.pauses_per_week) * 1.05)
        top.set_ylabel(chart.pauses_axis, fontsize=LABEL_SIZE, color=INK)
        top.set_xlabel(chart.weeks_axis, fontsize=LABEL_SIZE, color=INK)
        top.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
        _label_ticks(top, chart.week_labels)

        groups = range(len(chart.loudness_labels))
        before = [_nan(v) for v in chart.before]
        after = [_nan(v) for v in chart.after]
        if chart.early:
            # Each pause on its own: a pair of bars, no line between pauses.
            bottom.bar(
                [x - 0.2 for x in groups],
                before,
                width=0.4,
                color=BEFORE_COLOUR,
                label=chart.before_label,
            )
            bottom.bar(
                [x + 0.2 for x in groups],
                after,
                width=0.4,
                color=AFTER_COLOUR,
                label=chart.after_label,
            )
        else:
            dots = "o" if len(groups) <= MAX_DOTS else None
            for values, colour, label in (
                (before, BEFORE_COLOUR, chart.before_label),
                (after, AFTER_COLOUR, chart.after_label),
            ):
                bottom.plot(groups, values, color=colour, marker=dots, linewidth=3, label=label)
        bottom.set_ylim(0, 10.5)
        bottom.set_yticks([0, 5, 10])
        bottom.set_ylabel(chart.loudness_axis, fontsize=LABEL_SIZE, color=INK)
        bottom.set_xlabel(chart.loudness_x_axis, fontsize=LABEL_SIZE, color=INK)
        _label_ticks(bottom, chart.loudness_labels)
        bottom.legend(
            loc="lower left",
            bbox_to_anchor=(0, 1),
            ncols=2,
            frameon=False,
            fontsize=LABEL_SIZE,
            borderaxespad=0.2,
        )

        for axes in (top, bottom):
            axes.spines[["top", "right"]].set_visible(False)
            axes.tick_params(labelsize=TICK_SIZE, colors=INK)
        out = io.BytesIO()
        # Light compression: encoding is a fifth of the time at the default level,
        # and the file stays small for a chart (well under 200 KB).
        figure.savefig(
            out,
            format="png",
            dpi=DPI,
            metadata={"Software": None},
            pil_kwargs={"compress_level": 1},
        )
    return out.getvalue()


def _panel_width_inches() -> float:
    return WIDTH_PX / DPI * (MARGINS["right"] - MARGINS["left"])


def _label_ticks(axes: object, labels: tuple[str, ...]) -> None:
    step = max(1, math.ceil(len(labels) / MAX_TICKS))
    # Counted from the end, so the latest week always has its label.
    shown = list(range(len(labels) - 1, -1, -step))[::-1]
    axes.set_xticks(shown, [labels[i] for i in shown])  # type: ignore[attr-defined]
    axes.set_xlim(-0.6, max(len(labels), MIN_SLOTS) - 0.4)  # type: ignore[attr-defined]


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


async def drawn(reply: Reply) -> Reply:
    """`reply` with each chart drawn into an image attachment, its rows carrying the
    drawn messages (so the first send does not draw again; a row read back after a
    crash holds the chart and is drawn when sent, `draw_charts`)."""
    if not any(message.chart is not None for message in reply):
        return reply
    messages = await draw_charts(reply)
    rows = [
        replace(row, message=message) for row, message in zip(reply.rows, messages, strict=False)
    ]
    return Reply(messages, rows)


async def draw_charts(messages: Sequence[Outbound]) -> list[Outbound]:
    """`messages` with each chart drawn into an image attachment. A chart that cannot
    be drawn is left out and its message goes alone: the words carry the same figures."""
    out: list[Outbound] = []
    for message in messages:
        chart = message.chart
        if chart is None:
            out.append(message)
            continue
        try:
            png = await asyncio.to_thread(draw_png, chart)
        except Exception:
            log.exception("chart not drawn; its message goes without it")
            out.append(replace(message, chart=None))
            continue
        picture = Attachment(chart.filename, png, "image/png", description=chart.description)
        out.append(replace(message, chart=None, attachment=picture))
    return out
