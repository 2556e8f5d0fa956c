"""HTML report of a pool-vs-silos study."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib import pyplot as plt
from rich.table import Table

from computepool.plan.silos import Arrangement, SilosResult, StudyInput
from computepool.report.html import PALETTE, figure_png, page, section, table


def arrangements(r: SilosResult) -> list[Arrangement]:
    return [a for a in (r.silos, r.pool, r.smaller) if a is not None]


LABELS = {
    "silos": "(a) own cluster per tenant",
    "pool": "(b) one pool, same cards",
    "smaller pool": "(c) smaller pool, same JCT",
}


SHORT = {"silos": "(a) silos", "pool": "(b) pool", "smaller pool": "(c) smaller pool"}


def summary_rows(r: SilosResult, short: bool = False) -> list[list[str]]:
    rows = []
    for a in arrangements(r):
        rows.append(
            [
                (SHORT if short else LABELS).get(a.name, a.name),
                f"{a.cards:,}",
                f"{a.utilisation:.1%}",
                f"{a.avg_jct_hours:.2f}",
                f"{a.p99_jct_hours:.1f}",
                f"{a.mean_queueing_hours * 60:.1f}",
                f"${a.cost_usd:,.0f}",
                f"${a.cost_per_useful_hour:.2f}",
                f"{a.jobs_completed:,}/{a.jobs:,}",
            ]
        )
    return rows


HEADERS = [
    "arrangement",
    "cards",
    "utilisation",
    "avg JCT (h)",
    "p99 JCT (h)",
    "avg queueing (min)",
    "cost in window",
    "USD per useful accel-h",
    "jobs done",
]
SHORT_HEADERS = ["", "cards", "util", "JCT h", "p99 h", "queue min", "cost", "$/useful h", "done"]


def _fig_bars(r: SilosResult) -> str:
    arr = arrangements(r)
    names = [LABELS.get(a.name, a.name).split(" ", 1)[0] for a in arr]
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.0))
    series = [
        ("cards", [a.cards for a in arr], "{:,.0f}"),
        ("utilisation (%)", [a.utilisation * 100 for a in arr], "{:.0f}"),
        ("avg JCT (h)", [a.avg_jct_hours for a in arr], "{:.2f}"),
        ("USD / useful accel-h", [a.cost_per_useful_hour for a in arr], "{:.2f}"),
    ]
    for ax, (title, vals, fmt) in zip(axes, series, strict=True):
        bars = ax.bar(names, vals, color=PALETTE[: len(vals)])
        for b, v in zip(bars, vals, strict=True):
            ax.annotate(
                fmt.format(v),
                (b.get_x() + b.get_width() / 2, b.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    return figure_png(fig)


def _fig_search(r: SilosResult) -> str:
    pts = sorted(r.search)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=PALETTE[0])
    ax.axhline(r.jct_target_hours, color=PALETTE[1], ls="--", label="JCT target")
    ax.axvline(r.pooled_peak, color="grey", ls=":", label="pooled peak demand")
    ax.set_xlabel("pool size (cards)")
    ax.set_ylabel("average JCT (h)")
    ax.set_title("bisection over the pool size", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure_png(fig)


def _fig_tenants(r: SilosResult) -> str:
    t = sorted(r.tenants, key=lambda x: -x.cards)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    x = np.arange(len(t))
    ax.bar(x, [row.cards for row in t], color=PALETTE[0], label="silo size")
    avg = [row.work_hours / r.window_hours for row in t]
    ax.bar(x, avg, color=PALETTE[2], width=0.5, label="average demand")
    ax.set_xticks(x, [row.name for row in t], rotation=45, fontsize=8)
    ax.set_ylabel("cards")
    ax.set_title("each tenant's silo against its average demand", fontsize=10)
    ax.legend(fontsize=8)
    return figure_png(fig)


def render_silos_report(r: SilosResult, inp: StudyInput, facts: dict[str, Any], name: str) -> str:
    e = inp.economics
    t_rows = [
        [
            row.name,
            f"{row.jobs:,}",
            f"{row.work_hours:,.0f}",
            f"{row.true_peak:,.0f}",
            f"{row.peak:,.0f}",
            f"{row.cards:,}",
            f"{row.utilisation:.1%}",
            f"{row.avg_jct_hours:.2f}",
            f"{row.pool_jct_hours:.2f}",
            f"{row.smaller_jct_hours:.2f}",
            f"${row.silo_cost_usd:,.0f}",
            f"${row.smaller_cost_share_usd:,.0f}",
        ]
        for row in sorted(r.tenants, key=lambda x: -x.work_hours)
    ]
    saving = ""
    if r.smaller is not None:
        saving = (
            f"<p>The smaller pool needs <b>{r.smaller.cards:,}</b> cards instead of "
            f"<b>{r.silos.cards:,}</b> ({1 - r.smaller.cards / r.silos.cards:.0%} fewer) for an "
            f"average JCT of {r.smaller.avg_jct_hours:.2f} h against the silos' "
            f"{r.silos.avg_jct_hours:.2f} h; cost per useful accelerator-hour "
            f"${r.smaller.cost_per_useful_hour:.2f} vs ${r.silos.cost_per_useful_hour:.2f}.</p>"
        )
    days = r.window_hours / 24
    method = [
        [
            "workload",
            f"{inp.workload.name} · {facts.get('jobs_simulated', 0):,} of "
            f"{facts.get('jobs_in_trace', 0):,} jobs simulated (window plus warm-up)",
        ],
        [
            "window",
            f"day {facts.get('window_start_s', 0) / 86400:.0f} + {days:.0f} days; JCT over "
            f"{r.silos.jobs:,} jobs arriving in it",
        ],
        [
            "accelerator",
            f"{inp.accelerator.name}, {inp.per_node} per node, region {inp.region.name}",
        ],
        ["policy", f"{inp.policy}, rounds of {inp.round_seconds:.0f} s"],
        ["JCT target", f"{r.jct_target_hours:.3f} h"],
        ["ownership", f"${e.capex_per_card_usd:,.0f} per card over {e.lifetime_years:g} years"],
        [
            "energy",
            f"{e.busy_kw:.2f} kW per busy card (IT x PUE), idle at {e.idle_power_fraction:.0%}, "
            f"${e.electricity_usd_per_kwh:.3f}/kWh",
        ],
        ["simulator wall time", f"{r.wall_seconds:.0f} s"],
    ]
    sections = [
        section("Summary", saving + table(HEADERS, summary_rows(r)) + _fig_bars(r)),
        section(
            "Tenants",
            f"<p>Silo sizing: {r.sizing_rule}. Each tenant's outcome in its silo, in the pool of "
            "the same cards and in the smaller pool; the smaller pool's cost is shared by work.</p>"
            + table(
                [
                    "tenant",
                    "jobs",
                    "work (accel-h)",
                    "true peak",
                    "demand at sizing quantile",
                    "silo cards",
                    "silo utilisation",
                    "JCT silo (h)",
                    "JCT pool (h)",
                    "JCT smaller pool (h)",
                    "silo cost",
                    "share of smaller pool cost",
                ],
                t_rows,
            )
            + _fig_tenants(r),
        ),
        section(
            "Finding the smaller pool",
            _fig_search(r)
            + table(["cards", "avg JCT (h)"], [[f"{c:,}", f"{j:.3f}"] for c, j in r.search]),
        ),
        section(
            "Method and assumptions",
            table(["", ""], method) + "".join(f"<p class='note'>{n}</p>" for n in r.notes),
        ),
    ]
    sub = (
        f"{len(r.tenants)} tenants · {r.window_hours / 24:.0f}-day window · {inp.accelerator.name}"
    )
    return page(f"Pool vs silos · {name}", sub, sections)


def tenant_table(r: SilosResult) -> Table:
    """Per-tenant outcomes: silo size vs peak, and each tenant's JCT in silo, pool, smaller pool."""
    t = Table(title="per tenant")
    for h in ("tenant", "jobs", "true peak", "silo", "util", "JCT silo", "pool", "smaller"):
        t.add_column(h, justify="left" if h == "tenant" else "right")
    for row in sorted(r.tenants, key=lambda x: -x.work_hours):
        t.add_row(
            row.name[:24],
            f"{row.jobs:,}",
            f"{row.true_peak:,.0f}",
            f"{row.cards:,}",
            f"{row.utilisation:.0%}",
            f"{row.avg_jct_hours:.2f} h",
            f"{row.pool_jct_hours:.2f} h",
            f"{row.smaller_jct_hours:.2f} h",
        )
    return t
