"""Charts as inline SVG (no JavaScript, readable by screen readers through <title>)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any


def bars(items: Sequence[tuple[str, float, str]], maximum: float, title: str) -> str:
    """Horizontal bars: (label, value, shown text) each, scaled to ``maximum``."""
    row, label_w, bar_w = 28, 150, 300
    height = row * len(items) + 10
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {label_w + bar_w + 70} {height}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for i, (label, value, shown) in enumerate(items):
        y = 5 + i * row
        width = 0 if maximum <= 0 else max(0.0, min(1.0, value / maximum)) * bar_w
        parts.append(f'<text x="{label_w - 6}" y="{y + 17}" text-anchor="end">{escape(label)}</text>'
                     f'<rect x="{label_w}" y="{y + 4}" width="{width:.1f}" height="18" rx="3"/>'
                     f'<text x="{label_w + width + 6:.1f}" y="{y + 17}">{escape(shown)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def rates_svg(rates: Iterable[Any]) -> str:
    items = [(r.title or r.name, r.value if r.has_value else 0.0, f"{r.value:.1%}" if r.has_value else "无数据")
             for r in rates]
    return bars(items, 1.0, "考核指标")


def scores_svg(scores: Sequence[tuple[str, float]]) -> str:
    return bars([(unit, score, f"{score:.1f}") for unit, score in scores], 100.0, "单位考核得分排名")
