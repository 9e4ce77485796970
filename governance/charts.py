"""Server-rendered SVG charts (pygal) for the admin: no JavaScript, no CDN, readable as a picture.

Use from any admin view or template: ``{{ chart_svg }}`` with the string marked safe by these
helpers. Series values are numbers; labels are dates or names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pygal
from django.utils.safestring import SafeString, mark_safe
from pygal.style import Style

STYLE = Style(
    background="transparent",
    plot_background="transparent",
    foreground="#333",
    foreground_strong="#111",
    foreground_subtle="#767676",
    colors=("#0b6e99", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#2c3e50", "#16a085", "#7f8c8d"),
    font_family="system-ui, 'Hiragino Sans', 'Noto Sans JP', sans-serif",
    label_font_size=11,
    major_label_font_size=11,
    legend_font_size=12,
    title_font_size=14,
)


# pygal always writes an inline <script> with its tooltip configuration; without its tooltip script
# (never loaded: no CDN) it does nothing, and the Content-Security-Policy would refuse it.
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.DOTALL)


def _svg(chart) -> SafeString:
    return mark_safe(_SCRIPT.sub("", chart.render(is_unicode=True)))  # noqa: S308 - pygal escapes labels


def _config(chart, title: str, height: int) -> None:
    chart.config.js = []  # pygal links a tooltip script from a CDN by default; we serve nothing remote
    chart.config.css = list(chart.config.css)
    chart.title = title
    chart.height = height
    chart.width = 800
    chart.disable_xml_declaration = True
    chart.explicit_size = False
    chart.legend_at_bottom = True
    chart.legend_at_bottom_columns = 4
    chart.truncate_legend = 28
    chart.print_values = False
    chart.no_data_text = "—"


MAX_X_LABELS = 10  # at most this many x labels shown: each keeps room for itself, unrotated


def _x_labels(chart, labels: Sequence[str]) -> None:
    """Show every n-th x label so at most :data:`MAX_X_LABELS` are drawn, horizontally: at 800
    units wide a date label needs ~40, so ten never touch (the browser test measures them)."""
    chart.x_labels = list(labels)
    chart.x_labels_major_every = max(1, -(-len(labels) // MAX_X_LABELS))
    chart.show_minor_x_labels = len(labels) <= MAX_X_LABELS
    chart.x_label_rotation = 0
    chart.truncate_label = -1  # pygal would cut "11-03" to "11…" (it sizes for every label)


def line_chart(
    *, title: str, labels: Sequence[str], series: Mapping[str, Sequence[float | None]], height: int = 320,
    percent: bool = False,
) -> SafeString:
    chart = pygal.Line(style=STYLE, dots_size=2)
    _config(chart, title, height)
    _x_labels(chart, labels)
    if percent:
        chart.value_formatter = lambda v: f"{v:.0f}%"
        chart.range = (0, 100)
    for name, values in series.items():
        chart.add(str(name), list(values))
    return _svg(chart)


def bar_chart(
    *, title: str, labels: Sequence[str], series: Mapping[str, Sequence[float | None]], height: int = 320,
    stacked: bool = False, horizontal: bool = False,
) -> SafeString:
    cls = (pygal.StackedBar if stacked else pygal.Bar) if not horizontal else pygal.HorizontalBar
    chart = cls(style=STYLE)
    _config(chart, title, height)
    if horizontal:
        chart.x_labels = list(labels)
    else:
        _x_labels(chart, labels)
    for name, values in series.items():
        chart.add(str(name), list(values))
    return _svg(chart)
