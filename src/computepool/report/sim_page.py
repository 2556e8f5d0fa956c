"""The one report of a simulation: what ``cpool simulate/compare --report`` writes and what
``cpool report RESULT.json`` draws from the saved result, page for page the same.

Input: the result documents ``cpool simulate/compare --json`` writes (``report/timeline.py``:
``sim_doc``), already checked by ``report/saved.py``. Output: sections in the dashboard's
look (key-figure tiles, region x accelerator grid, inline SVG charts).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from computepool.report.html import heat_grid, kpis, section, table
from computepool.report.svg import Series, line_chart, percent
from computepool.report.theme import INK, colour, dash

SIM_ROWS = [
    ("avg_jct_hours", "avg JCT (h)", "{:.2f}"),
    ("p50_jct_hours", "p50 JCT (h)", "{:.2f}"),
    ("p99_jct_hours", "p99 JCT (h)", "{:.2f}"),
    ("makespan_hours", "makespan (h)", "{:.1f}"),
    ("mean_ftf_rho", "mean FTF ρ", "{:.3f}"),
    ("mean_queueing_delay_hours", "queueing delay (h)", "{:.2f}"),
    ("jobs_completed", "jobs completed", "{:,}"),
    ("jobs_rejected", "jobs rejected", "{:,}"),
    ("utilization_overall", "utilisation", "{:.1%}"),
    ("accelerator_hours", "accelerator-hours", "{:,.0f}"),
    ("energy_mwh", "energy (MWh)", "{:,.2f}"),
    ("cost_usd", "cost (USD)", "{:,.0f}"),
    ("carbon_t", "carbon (t CO₂)", "{:,.2f}"),
    ("preemptions", "preemptions", "{:,}"),
    ("mean_fragmented_share", "fragmented (mean)", "{:.1%}"),
    ("wall_seconds", "simulator wall time (s)", "{:.2f}"),
]
WIDTH = 1160


def fmt(v: object, pattern: str) -> str:
    if v is None:
        return "–"
    try:
        return pattern.format(v)
    except (TypeError, ValueError):
        return str(v)


def series(labels: Sequence[str], values: Sequence[Sequence[float]]) -> list[Series]:
    """One line per label, each a different colour, then colour and dash pattern."""
    return [
        Series(label, list(v), colour(i), dash(i))
        for i, (label, v) in enumerate(zip(labels, values, strict=True))
    ]


def _hours(v: float) -> str:
    return f"{v:,.0f} h" if v >= 10 else f"{v:.2g} h"


def _tiles(first: Mapping) -> str:
    return kpis(
        [
            ("utilisation", fmt(first.get("utilization_overall"), "{:.1%}"), first["policy"]),
            ("avg JCT", fmt(first.get("avg_jct_hours"), "{:.2f} h"), "job completion time"),
            ("p50 JCT", fmt(first.get("p50_jct_hours"), "{:.2f} h"), "median job"),
            ("mean FTF ρ", fmt(first.get("mean_ftf_rho"), "{:.3f}"), "finish-time fairness"),
            ("jobs completed", fmt(first.get("jobs_completed"), "{:,}"), ""),
            ("energy", fmt(first.get("energy_mwh"), "{:,.2f} MWh"), ""),
            ("cost", fmt(first.get("cost_usd"), "${:,.0f}"), ""),
        ]
    )


def jct_chart(docs: Sequence[Mapping]) -> str | None:
    """The JCT distribution of each policy (fraction of jobs done within x hours, x on a log
    scale), from the quantiles each result carries."""
    curves = [
        (d["policy"], np.asarray(d["jct"]["hours"], float), np.asarray(d["jct"]["fraction"]))
        for d in docs
        if isinstance(d.get("jct"), Mapping) and d["jct"].get("hours")
    ]
    positive = [h[(h > 0) & np.isfinite(h)] for _, h, _ in curves]
    if not curves or not any(len(p) for p in positive):
        return None
    lo = min(float(p.min()) for p in positive if len(p))
    hi = max(float(p.max()) for p in positive if len(p))
    grid = np.linspace(math.log10(lo), math.log10(max(hi, lo * 1.01)), 160)
    x = 10.0**grid
    fractions = [np.interp(x, h, q, left=0.0, right=1.0) for _, h, q in curves]
    lines = series([p for p, _, _ in curves], fractions)
    body = line_chart(
        list(grid), lines, y_max=1.0, y_fmt=percent, x_fmt=lambda v: _hours(10.0**v),
        width=WIDTH, height=260,
    )  # fmt: skip
    note = "<p class='note'>Share of the measured jobs finished within x hours (log scale).</p>"
    return body + note


def _utilisation_chart(d: Mapping) -> str | None:
    tl = d.get("timeline")
    if not isinstance(tl, Mapping) or not tl.get("t_hours"):
        return None
    x = tl["t_hours"]
    flavors = list(tl["utilization"])
    lines = series(flavors, [tl["utilization"][f] for f in flavors])
    cap = tl.get("capacity", {})
    if cap and all(f in cap for f in flavors):
        tot = sum(cap[f] for f in flavors) or 1
        overall = [
            sum(tl["utilization"][f][i] * cap[f] for f in flavors) / tot for i in range(len(x))
        ]
        lines.append(Series("whole pool", overall, INK))
    body = line_chart(x, lines, y_max=1.0, y_fmt=percent, x_fmt=_hours, width=WIDTH, height=280)
    if tl.get("queued"):
        body += "<h3 style='margin:1rem 0 .3rem'>Queue length</h3>" + line_chart(
            x, [Series("jobs waiting", tl["queued"], "#d97706")], x_fmt=_hours,
            width=WIDTH, height=200, fill=True, y_floor=1.0,
        )  # fmt: skip
    return body


def _fragmentation_chart(docs: Sequence[Mapping]) -> str | None:
    """Fragmented (solid) and allocated (dashed) shares of the accelerators over time."""
    out = []
    for i, d in enumerate(docs):
        f = d.get("fragmentation")
        if not isinstance(f, Mapping) or not f.get("t"):
            continue
        x = [float(t) / 3600.0 for t in f["t"]]
        lines = [
            Series(f"{d['policy']}: fragmented", f["fragmented_share"], colour(i)),
            Series(f"{d['policy']}: allocated", f["allocated_share"], colour(i), "2 3"),
        ]
        out.append(line_chart(x, lines, y_max=1.0, y_fmt=percent, x_fmt=_hours, width=WIDTH))
    return "".join(out) or None


def sim_sections(docs: Sequence[Mapping[str, Any]]) -> list[str]:
    out = [_tiles(docs[0])]
    out.append(
        section(
            "Summary",
            table(
                ["metric", *(d["policy"] for d in docs)],
                [[label, *(fmt(d.get(k), pat) for d in docs)] for k, label, pat in SIM_ROWS],
            ),
        )
    )
    jct = jct_chart(docs)
    if jct is not None:
        out.append(section("JCT distribution", jct))
    grids = "".join(
        f"<h3 style='margin:.4rem 0'>{html.escape(d['policy'])}</h3>"
        + heat_grid(
            {
                f: (float(u), f"of {(d.get('timeline') or {}).get('capacity', {}).get(f, '?')}")
                for f, u in d["utilization"].items()
            }
        )
        for d in docs
    )
    out.append(section("Utilisation by region × accelerator type (mean over the run)", grids))
    for d in docs:
        chart = _utilisation_chart(d)
        if chart is not None:
            out.append(section(f"Utilisation over simulated time · {d['policy']}", chart))
    frag = _fragmentation_chart(docs)
    if frag is not None:
        out.append(section("Fragmentation over time (placement)", frag))
    return out


def subtitle(docs: Sequence[Mapping[str, Any]], source: str = "") -> str:
    first = docs[0]
    window = first.get("window")
    jobs = f"jobs {window[0]}–{window[1] - 1}" if window else "all jobs"
    policies = ", ".join(d["policy"] for d in docs)
    where = f" · from {source}" if source else ""
    return (
        f"pool {first['pool']} · workload {first.get('workload', '?')} · {policies} · "
        f"JCT over {jobs}{where}"
    )
