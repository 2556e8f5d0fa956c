"""HTML report for one or more simulation results: summary, JCT CDF, utilisation over time."""

from __future__ import annotations

import numpy as np
from matplotlib import pyplot as plt

from computepool.report.html import PALETTE, figure_png, page, section, table
from computepool.sim.metrics import SimResult

ROWS = [
    ("avg_jct_hours", "avg JCT (h)", "{:.2f}"),
    ("p50_jct_hours", "p50 JCT (h)", "{:.2f}"),
    ("p99_jct_hours", "p99 JCT (h)", "{:.2f}"),
    ("makespan_hours", "makespan (h)", "{:.1f}"),
    ("mean_ftf_rho", "mean FTF ρ", "{:.3f}"),
    ("mean_queueing_delay_hours", "queueing delay (h)", "{:.2f}"),
    ("jobs_completed", "jobs completed", "{}"),
    ("utilization_overall", "utilisation", "{:.1%}"),
    ("accelerator_hours", "accelerator-hours", "{:,.0f}"),
    ("energy_mwh", "energy (MWh)", "{:,.2f}"),
    ("cost_usd", "cost (USD)", "{:,.0f}"),
    ("carbon_t", "carbon (t CO₂)", "{:,.2f}"),
    ("wall_seconds", "simulator wall time (s)", "{:.2f}"),
]


def _fmt(v: object, p: str) -> str:
    if v is None:
        return "–"
    try:
        return p.format(v)
    except (TypeError, ValueError):
        return str(v)


def _jct_cdf(results: list[SimResult]) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for i, r in enumerate(results):
        j = r.jct[r.window_slice()]
        j = np.sort(j[~np.isnan(j)]) / 3600.0
        if len(j):
            ax.plot(j, np.arange(1, len(j) + 1) / len(j), label=r.policy, color=PALETTE[i % 8])
    ax.set_xscale("log")
    ax.set_xlabel("job completion time (hours, log scale)")
    ax.set_ylabel("fraction of jobs")
    ax.grid(alpha=0.3)
    ax.legend()
    return figure_png(fig)


def _utilisation(r: SimResult) -> str:
    t, util = r.utilization_timeline()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for k, name in enumerate(r.flavors):
        ax.plot(t / 3600.0, util[:, k], label=name, color=PALETTE[k % 8], lw=1.2)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("simulated time (hours)")
    ax.set_ylabel("busy fraction")
    ax.set_title(f"utilisation per flavor · {r.policy}", fontsize=10)
    ax.grid(alpha=0.3)
    if len(r.flavors) <= 12:
        ax.legend(fontsize=7, ncol=2)
    return figure_png(fig)


def _fragmentation(results: list[SimResult]) -> str | None:
    series = [(r.policy, r.extra.get("fragmentation")) for r in results]
    series = [(p, f) for p, f in series if f and len(f.get("t", []))]
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for i, (policy, f) in enumerate(series):
        t = np.asarray(f["t"]) / 3600.0
        ax.plot(
            t,
            np.asarray(f["fragmented_share"]),
            label=f"{policy}: fragmented",
            color=PALETTE[i % 8],
        )
        ax.plot(
            t,
            np.asarray(f["allocated_share"]),
            label=f"{policy}: allocated",
            color=PALETTE[i % 8],
            ls=":",
        )
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("simulated time (hours)")
    ax.set_ylabel("share of accelerators")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return figure_png(fig)


def render_sim_report(results: list[SimResult], title: str = "computepool simulation") -> str:
    if not results:
        raise ValueError("no results to report")
    first = results[0]
    summaries = [r.summary() for r in results]
    rows = [[label, *(_fmt(s.get(k), p) for s in summaries)] for k, label, p in ROWS]
    util_rows = [
        [f, *(_fmt(s["utilization"].get(f), "{:.1%}") for s in summaries)] for f in first.flavors
    ]
    window = f"jobs {first.window[0]}–{first.window[1] - 1}" if first.window else "all jobs"
    sub = f"pool {first.pool} · workload {first.workload} · JCT over {window}"
    sections = [
        section("Summary", table(["metric", *(r.policy for r in results)], rows)),
        section("JCT distribution", _jct_cdf(results)),
        section(
            "Utilisation by flavor", table(["flavor", *(r.policy for r in results)], util_rows)
        ),
        section("Utilisation over time", "".join(_utilisation(r) for r in results)),
    ]
    frag = _fragmentation(results)
    if frag is not None:
        sections.append(section("Fragmentation over time (placement)", frag))
    return page(title, sub, sections)
