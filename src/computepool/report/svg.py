"""Inline SVG charts (no JavaScript, no CDN): line charts, stacked bars and timelines.

Pure functions from numbers to markup, shared by the live dashboard and the reports, so a
what-if result and the live pool are drawn the same way.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from computepool.report.theme import GRID, INK, LINE

Fmt = Callable[[float], str]


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float]
    colour: str
    #: SVG stroke-dasharray of a line ("" solid): tells apart series that share a colour.
    dash: str = ""


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    colour: str
    title: str = ""


@dataclass(frozen=True)
class Lane:
    label: str
    spans: Sequence[Span] = ()
    #: (time, colour, title) point events drawn as ticks.
    marks: Sequence[tuple[float, str, str]] = field(default_factory=tuple)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def nice_max(v: float) -> float:
    """The smallest 1/1.2/1.6/2/3/4/6/8 x 10^k at or above ``v`` (1 for nothing): quarters are
    round numbers too."""
    if not math.isfinite(v) or v <= 0:
        return 1.0
    k = 10 ** math.floor(math.log10(v))
    for m in (1, 1.2, 1.6, 2, 3, 4, 6, 8, 10):
        if v <= m * k * (1 + 1e-9):
            return m * k
    return 10 * k


def number(v: float) -> str:
    """Compact axis label: 1.2k, 3.4M, 0.25."""
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.3g}B"
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e3:
        return f"{v / 1e3:.3g}k"
    if a == 0 or a >= 1:
        return f"{v:.3g}"
    return f"{v:.2g}"


def percent(v: float) -> str:
    return f"{v:.0%}"


def _swatch(colour: str, dash: str) -> str:
    if not dash:
        return f"<i style='background:{colour}'></i>"
    return (
        "<svg width='22' height='10' style='margin-right:.3rem;vertical-align:0'>"
        f"<line x1='0' x2='22' y1='5' y2='5' stroke='{colour}' stroke-width='2.2' "
        f"stroke-dasharray='{dash}'/></svg>"
    )


def legend(items: Sequence[tuple[str, str] | tuple[str, str, str]]) -> str:
    """Below the chart, never over it: (label, colour) or (label, colour, dash) per series."""
    spans = "".join(
        f"<span>{_swatch(it[1], it[2] if len(it) > 2 else '')}{_e(it[0])}</span>" for it in items
    )
    return f"<div class='legend'>{spans}</div>" if items else ""


def _frame(w: int, h: int, title: str, body: str) -> str:
    return (
        f"<svg class='chart' viewBox='0 0 {w} {h}' preserveAspectRatio='xMidYMid meet' "
        f"role='img' aria-label='{_e(title)}'><title>{_e(title)}</title>{body}</svg>"
    )


def _y_axis(x0: float, x1: float, y0: float, y1: float, top: float, fmt: Fmt) -> list[str]:
    out = []
    for i in range(5):
        v = top * i / 4
        y = y0 - (y0 - y1) * i / 4
        out.append(f"<line x1='{x0}' x2='{x1}' y1='{y:.1f}' y2='{y:.1f}' stroke='{GRID}'/>")
        out.append(f"<text x='{x0 - 6}' y='{y + 4:.1f}' text-anchor='end'>{_e(fmt(v))}</text>")
    out.append(f"<line x1='{x0}' x2='{x1}' y1='{y0}' y2='{y0}' stroke='{LINE}'/>")
    return out


def line_chart(
    x: Sequence[float],
    series: Sequence[Series],
    *,
    x_fmt: Fmt = number,
    y_fmt: Fmt = number,
    y_max: float | None = None,
    y_floor: float = 0.0,
    title: str = "",
    width: int = 560,
    height: int = 220,
    fill: bool = False,
) -> str:
    """Lines over a shared x axis; ``y_max`` fixes the scale (1.0 for utilisation),
    ``y_floor`` is the smallest top of the scale (1 for counts)."""
    L, R, T, B = 52, 14, 10, 26
    n = len(x)
    peak = max((max(s.values, default=0.0) for s in series), default=0.0)
    top = y_max if y_max is not None else max(nice_max(peak), y_floor)
    x0, x1, y0, y1 = L, width - R, height - B, T
    parts = _y_axis(x0, x1, y0, y1, top, y_fmt)
    if n == 0:
        parts.append(
            f"<text x='{(x0 + x1) / 2}' y='{(y0 + y1) / 2}' text-anchor='middle'>no data</text>"
        )
        return _frame(width, height, title, "".join(parts)) + legend([])
    lo, hi = float(x[0]), float(x[-1])
    span = hi - lo or 1.0

    def px(v: float) -> float:
        return x0 + (x1 - x0) * (v - lo) / span

    def py(v: float) -> float:
        return y0 - (y0 - y1) * min(max(v / top, 0.0), 1.05)

    ticks = 6 if n > 6 else n
    for i in range(ticks):
        v = lo + span * i / max(ticks - 1, 1)
        anchor = "start" if i == 0 else "end" if i == ticks - 1 else "middle"
        parts.append(
            f"<text x='{px(v):.1f}' y='{height - 8}' text-anchor='{anchor}'>{_e(x_fmt(v))}</text>"
        )
    for s in series:
        pts = " ".join(
            f"{px(float(a)):.1f},{py(float(b)):.1f}" for a, b in zip(x, s.values, strict=False)
        )
        if fill and pts:
            area = f"{px(float(x[0])):.1f},{y0} {pts} {px(float(x[len(s.values) - 1])):.1f},{y0}"
            parts.append(f"<polygon points='{area}' fill='{s.colour}' fill-opacity='.12'/>")
        dashed = f" stroke-dasharray='{s.dash}'" if s.dash else ""
        parts.append(
            f"<polyline points='{pts}' fill='none' stroke='{s.colour}' stroke-width='1.8' "
            f"stroke-linejoin='round'{dashed}><title>{_e(s.label)}</title></polyline>"
        )
    body = "".join(parts)
    return _frame(width, height, title, body) + legend(
        [(s.label, s.colour, s.dash) for s in series]
    )


def stacked_bars(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    y_fmt: Fmt = number,
    title: str = "",
    width: int = 1160,
    height: int = 260,
    marks: Sequence[float | None] = (),
) -> str:
    """One stacked bar per category; ``marks`` draws a target line on a bar (e.g. a need)."""
    L, R, T, B = 56, 14, 10, 28
    n = len(categories)
    totals = [sum(float(s.values[i]) for s in series) for i in range(n)]
    peak = max([*totals, *(m for m in marks if m is not None)], default=0.0)
    top = nice_max(peak)
    x0, x1, y0, y1 = L, width - R, height - B, T
    parts = _y_axis(x0, x1, y0, y1, top, y_fmt)
    slot = (x1 - x0) / max(n, 1)
    bw = max(min(slot * 0.7, 60.0), 2.0)
    every = max(1, math.ceil(n / 12))
    for i, cat in enumerate(categories):
        cx = x0 + slot * (i + 0.5)
        base = 0.0
        for s in series:
            v = float(s.values[i])
            if v <= 0:
                continue
            ya = y0 - (y0 - y1) * (base + v) / top
            hgt = (y0 - y1) * v / top
            parts.append(
                f"<rect x='{cx - bw / 2:.1f}' y='{ya:.1f}' width='{bw:.1f}' height='{hgt:.1f}' "
                f"fill='{s.colour}'><title>{_e(cat)} · {_e(s.label)}: {_e(y_fmt(v))}</title></rect>"
            )
            base += v
        if i < len(marks) and marks[i] is not None:
            ym = y0 - (y0 - y1) * float(marks[i]) / top
            parts.append(
                f"<line x1='{cx - bw / 2 - 3:.1f}' x2='{cx + bw / 2 + 3:.1f}' y1='{ym:.1f}' "
                f"y2='{ym:.1f}' stroke='{INK}' stroke-width='2.5'/>"
            )
        if i % every == 0:
            parts.append(
                f"<text x='{cx:.1f}' y='{height - 9}' text-anchor='middle'>{_e(cat)}</text>"
            )
    items = [(s.label, s.colour) for s in series if any(float(v) > 0 for v in s.values)]
    return _frame(width, height, title, "".join(parts)) + legend(items)


def timeline(
    lanes: Sequence[Lane],
    t0: float,
    t1: float,
    *,
    x_fmt: Fmt = number,
    title: str = "",
    width: int = 1160,
) -> str:
    """Horizontal lanes of spans (placement intervals) and marks (events) over [t0, t1]."""
    L, R, lane_h, T = 200, 14, 26, 6
    height = T + lane_h * max(len(lanes), 1) + 24
    span = (t1 - t0) or 1.0

    def px(v: float) -> float:
        return L + (width - L - R) * min(max((v - t0) / span, 0.0), 1.0)

    parts = []
    for i in range(6):
        v = t0 + span * i / 5
        x = px(v)
        anchor = "start" if i == 0 else "end" if i == 5 else "middle"
        parts.append(
            f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{T}' y2='{height - 22}' stroke='{GRID}'/>"
        )
        parts.append(
            f"<text x='{x:.1f}' y='{height - 8}' text-anchor='{anchor}'>{_e(x_fmt(v))}</text>"
        )
    for k, lane in enumerate(lanes):
        y = T + lane_h * k
        parts.append(f"<text x='{L - 8}' y='{y + 17}' text-anchor='end'>{_e(lane.label)}</text>")
        for sp in lane.spans:
            a, b = px(sp.start), px(sp.end)
            parts.append(
                f"<rect x='{a:.1f}' y='{y + 5}' width='{max(b - a, 2.0):.1f}' height='{lane_h - 10}' "
                f"rx='3' fill='{sp.colour}'><title>{_e(sp.title)}</title></rect>"
            )
        for t, c, ttl in lane.marks:
            x = px(t)
            parts.append(
                f"<circle cx='{x:.1f}' cy='{y + lane_h / 2:.1f}' r='5' fill='{c}' stroke='#fff' "
                f"stroke-width='1.5'><title>{_e(ttl)}</title></circle>"
            )
    return _frame(width, height, title, "".join(parts))
