"""HTML report of a residency scenario: per tenant regions, data moved, JCT, cost, carbon and
deadline-hit rate; the rules that decided; approvals; person counters; latency of the stream."""

from __future__ import annotations

import html
import math

import numpy as np
from matplotlib import pyplot as plt

from computepool.report.html import PALETTE, figure_png, page, section, table
from computepool.scenario.residency import ScenarioResult


def _pct(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1%}"


def _num(v: float | None, fmt: str) -> str:
    return "–" if v is None else fmt.format(v)


def _share(s: float) -> str:
    return "<1%" if 0 < s < 0.005 else f"{s:.0%}"


def _tenant_table(res: ScenarioResult) -> str:
    rows = [
        [
            t["tenant"],
            f"{t['jobs']:,}",
            f"{t['completed']:,}",
            f"{t['rejected']:,}",
            ", ".join(f"{r} {_share(s)}" for r, s in t["region_share"].items()) or "–",
            f"{t['accelerator_hours']:,.0f}",
            f"{t['transfer_tb']:.2f}",
            _num(t["avg_jct_hours"], "{:.2f}"),
            _num(t["p90_jct_hours"], "{:.2f}"),
            f"{t['list_price_usd']:,.0f}",
            f"{t['energy_usd']:,.0f}",
            f"{t['egress_usd']:,.0f}",
            f"{t['cost_usd']:,.0f}",
            f"{t['carbon_t']:.2f}",
            _pct(t["deadline_hit_rate"]),
            _pct(t["edge_rate"]),
        ]  # fmt: skip
        for t in res.tenants
    ]
    head = ["tenant", "jobs", "completed", "rejected", "regions (share of accelerator-hours)",
            "accelerator-h", "data moved (TB)", "avg JCT (h)", "p90 JCT (h)",
            "rental at list price (USD)", "energy (USD)", "egress (USD)", "cost (USD)",
            "carbon (t CO₂)", "offload deadline hit", "run on device"]  # fmt: skip
    note = (
        "<p class='note'>Cost = accelerator rental at the catalog's hourly price (derived from "
        "purchase price or H100-equivalence where no rental price is public, docs/pools.md) + "
        "energy (region tariff x TDP x PUE) + egress. Regions: where each job last started, "
        "weighted by its accelerator-hours. Each job copies the data it reads from another region "
        "(no shared cache), so data moved is an upper bound.</p>"
    )
    return table(head, rows) + note


def _region_chart(res: ScenarioResult) -> str:
    regions = sorted({r for t in res.tenants for r in t["region_share"]})
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.55 * len(res.tenants)))
    names = [t["tenant"] for t in res.tenants]
    left = np.zeros(len(names))
    for k, r in enumerate(regions):
        vals = np.array([t["region_share"].get(r, 0.0) for t in res.tenants])
        ax.barh(names, vals, left=left, label=r, color=PALETTE[k % len(PALETTE)])
        left += vals
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the tenant's accelerator-hours")
    ax.legend(fontsize=8, ncol=min(len(regions), 4), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    ax.invert_yaxis()
    return figure_png(fig)


def _jct_cdf(res: ScenarioResult) -> str:
    w, sim = res.workload, res.sim
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for ti, name in enumerate(w.tenants):
        j = (sim.end - sim.arrival)[(w.tenant == ti) & ~np.isnan(sim.end)] / 3600.0
        if len(j):
            j = np.sort(j)
            ax.plot(j, np.arange(1, len(j) + 1) / len(j), label=name, color=PALETTE[ti % 8])
    ax.set_xscale("log")
    ax.set_xlabel("job completion time (hours, log scale)")
    ax.set_ylabel("fraction of jobs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure_png(fig)


def _latency_hist(res: ScenarioResult) -> str:
    st, tenants = res.stream, res.stream_tenant
    assert st is not None and tenants is not None and res.requests is not None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for k, name in enumerate(sorted(set(tenants))):
        sel = (tenants == name) & st.hit
        if sel.any():
            ax.hist(st.total_ms[sel], bins=60, alpha=0.6, label=name, color=PALETTE[k % 8])
    for c in res.requests.classes:
        ax.axvline(c.deadline_ms, color="#616e7c", lw=0.8, ls="--")
    ax.set_xlabel("end-to-end latency of requests answered in the cloud (ms)")
    ax.set_ylabel("requests")
    ax.legend(fontsize=8)
    return figure_png(fig)


def _stream_table(res: ScenarioResult) -> str:
    st, req = res.stream, res.requests
    assert st is not None and req is not None
    rows = []
    for k, c in enumerate(req.classes):
        sel = req.klass == k
        used = st.target[sel & st.hit]
        where = ", ".join(
            f"{st.flavors[f]} {n / max(len(used), 1):.0%}"
            for f, n in zip(*np.unique(used, return_counts=True), strict=True)
        )
        lat = st.total_ms[sel & st.hit]
        rows.append([
            c.name, c.tenant, ", ".join(c.sites), f"{int(sel.sum()):,}", f"{c.deadline_ms:.0f}",
            f"{c.work_h100_ms:.0f}", _pct(st.hit_rate(sel)), _pct(st.edge_rate(sel)),
            f"{np.percentile(lat, 50):.0f}" if len(lat) else "–",
            f"{np.percentile(lat, 99):.0f}" if len(lat) else "–", where or "–",
        ])  # fmt: skip
    head = ["request class", "tenant", "sites", "requests", "deadline (ms)", "work (H100-ms)",
            "deadline hit", "run on device", "p50 ms", "p99 ms", "served by"]  # fmt: skip
    return table(head, rows)


def _rules_table(res: ScenarioResult) -> str:
    counts = res.check.audit.counts_by_rule()
    rb = res.check.rulebook
    rows = []
    for rule in sorted(
        set(counts["allowed"])
        | {r for s in counts["rejected"] for r in s.split(":")[-1].split(",")}
    ):
        rejected = sum(
            n for s, n in counts["rejected"].items() if rule in s.split(":")[-1].split(",")
        )
        r = rb.by_id.get(rule)
        rows.append([rule, r.title if r else "", f"{counts['allowed'].get(rule, 0):,}", f"{rejected:,}",
                     r.basis if r else ""])  # fmt: skip
    return table(["rule", "title", "starts allowed", "jobs rejected", "basis"], rows)


def _approvals_table(res: ScenarioResult) -> str:
    tb = res.check.timebase

    def when(t: float) -> str:
        return tb.to_datetime(t).date().isoformat() if math.isfinite(t) else "–"

    rows = [
        [a.id, a.kind, a.handler, a.origin, a.data_class, "/".join(a.to), when(a.valid_from), when(a.expires)]
        for a in res.check.approvals.approvals
    ]  # fmt: skip
    return table(["id", "kind", "handler", "origin", "class", "to", "from", "expires"], rows)


def _counters_table(res: ScenarioResult) -> str:
    rows = [[h, o, c, str(y), str(d), f"{p:,}"] for h, o, c, y, d, p in res.check.counters.rows()]
    if not rows:
        return (
            "<p class='note'>No counter moved: no data under a person-count threshold (CN-4, "
            "CN-5) left its origin jurisdiction.</p>"
        )
    return table(["handler", "origin", "counter", "year", "datasets exported", "persons"], rows)


def render_scenario_report(res: ScenarioResult) -> str:
    spec, s = res.spec, res.sim.summary()
    sub = (
        f"pool {spec.pool} · policy {spec.policy} · {spec.days:g} days from {spec.start} · "
        f"{len(res.workload):,} jobs · rulebook {res.check.rulebook.source} "
        f"(automotive_strict={res.check.rulebook.automotive_strict}) · seed {spec.seed}"
    )
    rz = s.get("residency", {})
    overview = table(
        ["figure", "value"],
        [
            ["jobs completed / rejected", f"{s['jobs_completed']:,} / {s['jobs_rejected']:,}"],
            ["avg JCT (h)", _num(s["avg_jct_hours"], "{:.2f}")],
            ["utilisation", f"{s['utilization_overall']:.1%}"],
            ["cost (USD, incl. egress)", f"{s['cost_usd']:,.0f}"],
            ["egress (USD)", f"{rz.get('egress_usd', 0):,.0f}"],
            ["data moved (TB)", f"{rz.get('transfer_tb', 0):.2f}"],
            ["start delay from transfers (h, summed)", f"{rz.get('transfer_delay_hours', 0):.1f}"],
            ["carbon (t CO₂)", f"{s['carbon_t']:.2f}"],
            ["audit records", f"{rz.get('audit_records', 0):,}"],
        ],
    )
    sections = [
        section(
            "About",
            f"<p>{html.escape(spec.description)}</p><p class='note'>Rules are an "
            "engineering reading of the law, not legal advice.</p>",
        ),
        section("Overview", overview),
        section("Per tenant", _tenant_table(res)),
        section("Regions used", _region_chart(res)),
        section("Job completion time", _jct_cdf(res)),
    ]
    if res.stream is not None:
        sections += [
            section("Latency-bound offload stream", _stream_table(res)),
            section("Latency of answered requests", _latency_hist(res)),
        ]
    sections += [
        section("Rules that decided", _rules_table(res)),
        section("Approvals on record", _approvals_table(res)),
        section("Persons exported (per handler, calendar year)", _counters_table(res)),
    ]
    return page(f"Residency scenario · {spec.name}", sub, sections)
