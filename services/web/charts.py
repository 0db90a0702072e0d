"""The follow-up chart, drawn as SVG by pygal (no script: it is shown as an image, and the
same numbers stand in a table beside it)."""

from __future__ import annotations

import math
from typing import Any

import pygal
from pygal.style import Style

from services.web.followup_data import number
from services.web.texts import Texts

# Colours with at least 3:1 contrast against white (WCAG 1.4.11, graphical objects).
STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#1b1b1b",
    foreground_strong="#1b1b1b",
    foreground_subtle="#595959",
    colors=("#005ea2", "#b50909", "#2e7d32"),
    font_family="sans-serif",
    label_font_size=13,
    major_label_font_size=13,
    legend_font_size=14,
    title_font_size=16,
)


def days_chart(series: list[dict[str, Any]], texts: Texts) -> str:
    highest = max([number(s["p90_days"]) or 0 for s in series] + [number(s["median_days"]) or 0 for s in series])
    top = max(20, math.ceil(highest / 10) * 10)
    chart = pygal.Line(
        js=[],
        disable_xml_declaration=True,
        style=STYLE,
        width=900,
        height=420,
        show_dots=True,
        dots_size=4,
        legend_at_bottom=True,
        secondary_range=(0, 100),
        range=(0, top),
        # Ten steps on the days axis, so that the share axis (0-100 %) falls on tens.
        y_labels=list(range(0, top + 1, top // 10)),
        title=texts("followup.chart_title"),
        no_data_text=texts("followup.no_data"),
        formatter=lambda v: f"{v:.0f}",
        x_title=texts("followup.month"),
        y_title=texts("followup.days"),
    )
    chart.x_labels = [s["month"] for s in series]
    chart.add(texts("followup.median_days"), [number(s["median_days"]) for s in series])
    chart.add(texts("followup.p90_days"), [number(s["p90_days"]) for s in series])
    chart.add(texts("followup.pct_within_7_days"), [number(s["pct_within_7_days"]) for s in series], secondary=True)
    svg: str = chart.render(is_unicode=True)
    return svg
