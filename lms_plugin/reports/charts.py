"""Server-side SVG charts (pygal), embedded as ``<img src="data:image/svg+xml;base64,…">``.

An SVG loaded as an image runs no script and its own ``<style>`` stays inside it, so the
page keeps its strict CSP (``img-src 'self' data:``; no inline script or style on the page)
and nothing comes from a CDN (pygal's JavaScript tooltips are switched off: ``js=[]``).
Every chart comes with a text summary and the page's data table as its alternative.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lms_plugin.reports.exports import Table


@dataclass(frozen=True)
class Chart:
    data_uri: str
    alt: str
    summary: str


def _style():
    from pygal.style import Style

    # Contrast >= 4.5:1 on white for text; one dark teal for the bars.
    return Style(background="#ffffff", plot_background="#ffffff", foreground="#1a1a1a",
                 foreground_strong="#1a1a1a", foreground_subtle="#4a4a4a",
                 colors=("#0b6e69",), font_family="sans-serif")


def overall_share(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> list[tuple[str, float]]:
    """Per competency column, the % holding over all the rows' people (weighted by each
    row's "People"), one decimal."""
    total = sum(row[1] for row in rows)
    result = []
    for index, header in enumerate(headers[2:], start=2):
        held = sum((row[index] or 0) * row[1] / 100.0 for row in rows)
        result.append((header.removesuffix(" %"), round(100.0 * held / total, 1) if total else 0.0))
    return result


def matrix_chart(table: Table, rows: Sequence[Sequence[Any]]) -> Chart | None:
    """A horizontal bar per competency: % of the people shown who hold it."""
    import pygal

    shares = overall_share(rows, table.headers)
    if not shares:
        return None
    chart = pygal.HorizontalBar(style=_style(), js=[], show_legend=False, range=(0, 100),
                                width=800, height=max(160, 26 * len(shares) + 70),
                                print_values=True, value_formatter=lambda v: f"{v:.1f}%",
                                title="People holding each competency (%)")
    # pygal draws the first bar at the bottom: reversed, the chart reads top-down like the
    # table's columns.
    chart.x_labels = [name for name, _ in reversed(shares)]
    chart.add("% holding", [value for _, value in reversed(shares)])
    svg = chart.render()
    people = sum(row[1] for row in rows)
    best = max(shares, key=lambda s: s[1])
    worst = min(shares, key=lambda s: s[1])
    summary = (f"{people} people in {len(rows)} groups. Highest: {best[0]} "
               f"({best[1]:.1f}% hold it); lowest: {worst[0]} ({worst[1]:.1f}%).")
    return Chart("data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii"),
                 "Bar chart of the share of people holding each competency; the same "
                 "figures are in the table below.", summary)


def items_chart(stats) -> Chart | None:
    """A bar per question: % answered correctly (questions with answers only)."""
    import pygal

    shown = [s for s in stats if s.percent_correct is not None]
    if not shown:
        return None
    chart = pygal.Bar(style=_style(), js=[], show_legend=False, range=(0, 100), width=800,
                      height=320, print_values=True, value_formatter=lambda v: f"{v:.0f}%",
                      title="Answered correctly, by question (%)")
    chart.x_labels = [f"#{s.position}" for s in shown]
    chart.add("% correct", [s.percent_correct for s in shown])
    flagged = [s for s in stats if s.flags]
    answers = max(s.answers for s in shown)
    summary = (f"{len(stats)} questions, up to {answers} answers each; "
               + (f"{len(flagged)} flagged for review: "
                  + "; ".join(f"#{s.position} {s.key} ({', '.join(s.flags)})" for s in flagged)
                  if flagged else "none flagged") + ".")
    return Chart("data:image/svg+xml;base64," + base64.b64encode(chart.render()).decode("ascii"),
                 "Bar chart of the share of answers that were correct for each question; the "
                 "same figures are in the table below.", summary)
