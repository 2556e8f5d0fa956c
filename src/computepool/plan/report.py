"""Self-contained HTML report of a plan (and of a sweep): tables and embedded matplotlib figures."""

from __future__ import annotations

import html

import numpy as np
from matplotlib import pyplot as plt

from computepool.plan.lines import schedule_lines
from computepool.plan.result import Plan
from computepool.plan.scenario import Scenario
from computepool.plan.sweep import SweepPoint, SweepSpec
from computepool.report.html import PALETTE, figure_png, page, section, table

NOTE_STYLE = "background:#fef2f2;border-left:4px solid #dc2626;padding:.6rem 1rem;margin:.5rem 0"
OK_STYLE = "background:#f0fdf4;border-left:4px solid #16a34a;padding:.6rem 1rem;margin:.5rem 0"


def usd(v: float) -> str:
    a = abs(v)
    if a >= 1e9:
        return f"${v / 1e9:,.2f}B"
    if a >= 1e6:
        return f"${v / 1e6:,.1f}M"
    if a >= 1e3:
        return f"${v / 1e3:,.0f}k"
    return f"${v:,.0f}"


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"


def _box(lines: list[str], style: str) -> str:
    items = "".join(f"<li>{html.escape(x)}</li>" for x in lines)
    return f"<div style='{style}'><ul style='margin:0'>{items}</ul></div>"


# ------------------------------------------------------------------------------ figures


def _fig_capacity(p: Plan) -> str:
    sc = p.scenario
    eff = p.effective_by_chip()
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    x = np.arange(len(sc.years))
    bottom = np.zeros(len(sc.years))
    for c, chip in enumerate(sc.chips):
        if eff[c].sum() <= 0:
            continue
        ax.bar(x, eff[c], bottom=bottom, label=chip.name, color=PALETTE[c % len(PALETTE)])
        bottom += eff[c]
    need = np.zeros(len(sc.years))
    for tg in sc.targets:
        if tg.unit == "h100e":
            need[sc.year_index(tg.year)] += tg.value
    for t in range(len(sc.years)):
        if need[t] > 0:
            ax.plot([t - 0.4, t + 0.4], [need[t]] * 2, color="black", lw=2)
    ax.set_xticks(x, [str(y) for y in sc.years])
    ax.set_ylabel("effective H100e delivered")
    ax.set_title(
        "compute delivered to the targets, by chip (black: sum of H100e targets)", fontsize=10
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return figure_png(fig)


def _fig_cost(p: Plan) -> str:
    sc = p.scenario
    x = np.arange(len(sc.years))
    parts = [
        ("cards + facility", p.capex_by_year()),
        ("site builds", p.build_by_year()),
        ("energy (+carbon price)", p.opex_by_year()),
    ]
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    bottom = np.zeros(len(sc.years))
    for i, (label, v) in enumerate(parts):
        ax.bar(x, v / 1e6, bottom=bottom, label=label, color=PALETTE[i])
        bottom += v / 1e6
    ax.set_xticks(x, [str(y) for y in sc.years])
    ax.set_ylabel("USD millions (undiscounted)")
    ax.set_title("spending per year", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return figure_png(fig)


def _fig_power(p: Plan) -> str:
    sc = p.scenario
    pw = p.power_mw()
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    for s, site in enumerate(sc.sites):
        col = PALETTE[s % len(PALETTE)]
        ax.plot(sc.years, pw[s], marker="o", color=col, label=site.name)
        ax.axhline(site.power_mw, color=col, ls=":", lw=1)
    ax.set_xticks(sc.years)
    ax.set_ylabel("facility power at full load (MW)")
    ax.set_title("power per site (dotted: cap)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return figure_png(fig)


def _fig_vendor(p: Plan) -> str:
    sc = p.scenario
    shares = p.vendor_share()
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    x = np.arange(len(sc.years))
    bottom = np.zeros(len(sc.years))
    for i, (v, share) in enumerate(shares.items()):
        ax.bar(x, share * 100, bottom=bottom, label=v, color=PALETTE[i % len(PALETTE)])
        bottom += share * 100
    caps = {s for s in sc.vendor_caps.values() if s < 1}
    for cap in caps:
        ax.axhline(cap * 100, color="black", ls="--", lw=1)
    ax.set_xticks(x, [str(y) for y in sc.years])
    ax.set_ylabel("% of installed H100e")
    ax.set_title("vendor mix (dashed: concentration cap)", fontsize=10)
    ax.legend(fontsize=8)
    return figure_png(fig)


def _fig_sweep(spec: SweepSpec, points: list[SweepPoint]) -> str:
    vals = np.array([pt.value for pt in points])
    npv = np.array([pt.plan.npv_usd() / 1e9 for pt in points])
    ok = np.array([pt.plan.feasible for pt in points])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    ax.plot(vals, npv, color=PALETTE[0], lw=1.2)
    ax.scatter(vals[ok], npv[ok], color=PALETTE[0], label="feasible", zorder=3)
    if (~ok).any():
        ax.scatter(
            vals[~ok],
            npv[~ok],
            color=PALETTE[1],
            marker="x",
            s=60,
            zorder=3,
            label="infeasible (closest plan)",
        )
    ax.set_xlabel(spec.param)
    ax.set_ylabel("net present cost (USD billions)")
    ax.set_title("cost against " + spec.param, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    vendors = points[0].plan.scenario.vendors
    bottom = np.zeros(len(points))
    width = (vals.max() - vals.min()) / max(len(vals), 1) * 0.8 or 0.1
    for i, v in enumerate(vendors):
        share = np.array([pt.plan.vendor_share()[v][-1] * 100 for pt in points])
        ax2.bar(vals, share, bottom=bottom, width=width, label=v, color=PALETTE[i % len(PALETTE)])
        bottom += share
    ax2.set_xlabel(spec.param)
    ax2.set_ylabel("% of final-year H100e")
    ax2.set_title("vendor mix in the final year", fontsize=10)
    ax2.legend(fontsize=7)
    return figure_png(fig)


# ------------------------------------------------------------------------------ tables


def _summary(p: Plan) -> str:
    sc = p.scenario
    by_chip = p.cards[:, :, -1].sum(axis=1)
    fleet = ", ".join(
        f"{int(round(n)):,} {c.name}" for c, n in zip(sc.chips, by_chip, strict=True) if n > 0.5
    )
    rows = [
        ["status", "feasible" if p.feasible else "INFEASIBLE (closest plan shown)"],
        ["net present cost", usd(p.npv_usd())],
        ["spending over the horizon (undiscounted)", usd(float(p.total_by_year().sum()))],
        [f"fleet in {sc.years[-1]}", fleet or "–"],
        [f"facility power in {sc.years[-1]}", f"{p.power_mw()[:, -1].sum():,.1f} MW"],
        ["energy over the horizon", f"{p.energy_mwh_by_year().sum():,.0f} MWh"],
        ["carbon over the horizon (location-based)", f"{p.carbon_t_by_year().sum():,.0f} t CO₂"],
        [
            "solver",
            f"HiGHS {p.stats.status}, {p.stats.seconds:.2f} s, gap "
            + ("–" if p.stats.gap is None else f"{p.stats.gap:.2%}")
            + f", {p.stats.variables:,} variables ({p.stats.integers:,} integer), {p.stats.rows:,} rows",
        ],
    ]
    return table(["", ""], rows)


def _targets(p: Plan) -> str:
    rows = []
    for tg, got in zip(p.scenario.targets, p.achieved(), strict=True):
        unit = "H100e" if tg.unit == "h100e" else "EFLOPS"
        eff = "effective" if tg.effective else "peak"
        rows.append(
            [
                tg.name,
                f"{_num(tg.value)} {unit} ({eff})",
                _num(got),
                f"{got / tg.value:.1%}",
                tg.source,
            ]
        )
    return table(["target", "required", "delivered", "met", "source"], rows)


def _schedule(p: Plan) -> str:
    sc = p.scenario
    rows = []
    for line in schedule_lines(p):
        if not line["nodes"]:
            continue
        c = [x.name for x in sc.chips].index(line["chip"])
        t = sc.year_index(line["year"])
        fab = line["fabric"]
        rows.append(
            [
                line["year"],
                line["site"],
                line["chip"],
                f"{line['nodes']:,}",
                f"{line['cards']:,}",
                usd(line["cards"] * sc.chips[c].capex_usd[t]),
                f"{line['min_order']:,}",
                f"{fab['name']} ({fab['interconnect']}): {fab['cards']:,} cards",
                ", ".join(fab["counts_toward"]) or "idle",
            ]
        )
    starts = [
        f"{site.name}: construction starts {p.site_start[site.name]}"
        for site in sc.sites
        if not site.built and p.site_start.get(site.name) is not None
    ]
    head = _box(starts, OK_STYLE) if starts else ""
    cols = ["year", "site", "chip", "nodes", "cards", "card capex", "min order", "fabric", "serves"]
    return head + table(cols, rows)


def _per_year(p: Plan) -> str:
    sc = p.scenario
    shares = p.vendor_share()
    rows = []
    cap, build, opex, total = (
        p.capex_by_year(),
        p.build_by_year(),
        p.opex_by_year(),
        p.total_by_year(),
    )
    mwh, co2, pw = p.energy_mwh_by_year(), p.carbon_t_by_year(), p.power_mw().sum(axis=0)
    for t, y in enumerate(sc.years):
        mix = ", ".join(f"{v} {s[t]:.0%}" for v, s in shares.items() if s[t] > 0.005)
        rows.append(
            [
                y,
                usd(cap[t]),
                usd(build[t]),
                usd(opex[t]),
                usd(total[t]),
                f"{pw[t]:,.1f}",
                f"{mwh[t]:,.0f}",
                f"{co2[t]:,.0f}",
                mix,
            ]
        )
    return table(
        [
            "year",
            "cards+facility",
            "site builds",
            "energy",
            "total",
            "MW",
            "MWh",
            "t CO₂",
            "vendor mix",
        ],
        rows,
    )


def _assumptions(sc: Scenario) -> str:
    chips = []
    for c in sc.chips:
        avail = "; ".join(
            f"{j}: "
            + (
                "all years"
                if all(a)
                else ", ".join(str(y) for y, ok in zip(sc.years, a, strict=True) if ok) or "never"
            )
            for j, a in c.available.items()
        )
        supply = ", ".join("∞" if s is None else f"{s:,.0f}" for s in c.supply)
        eff = sorted({round(v, 3) for v in c.efficiency.values()})
        chips.append(
            [
                c.name,
                c.vendor,
                f"{c.h100_equiv:.3f}",
                "/".join(map(str, eff)),
                f"{c.it_power_w:,.0f}",
                " → ".join(usd(x) for x in dict.fromkeys(c.capex_usd)),
                supply,
                avail,
                c.source,
            ]
        )
    sites = [
        [
            s.name,
            s.jurisdiction,
            f"{s.power_mw:,.0f}",
            "–" if s.card_cap is None else f"{s.card_cap:,}",
            f"{s.pue:.2f}",
            f"{s.electricity_usd_per_kwh:.3f}",
            f"{s.carbon_g_per_kwh:,.0f}",
            "built" if s.built else f"{usd(s.build_cost_usd)}, {s.lead_time_years} y",
            ", ".join(f"{n:,} {k}" for k, n in s.existing.items()) or "–",
            s.source,
        ]
        for s in sc.sites
    ]
    caps = ", ".join(f"{v} ≤ {x:.0%}" for v, x in sc.vendor_caps.items()) or "none"
    money = [
        ["discount rate", f"{sc.discount_rate:.1%}"],
        [
            "vendor caps",
            caps + (f" from {sc.vendor_cap_from_year}" if sc.vendor_cap_from_year else ""),
        ],
        ["budget (capital)", "none" if sc.budget_total_usd is None else usd(sc.budget_total_usd)],
        ["load factor", f"{sc.load_factor:.0%}"],
        ["energy after the horizon", f"{sc.tail_years} year(s)"],
    ]
    return (
        table(
            [
                "chip option",
                "vendor",
                "H100e",
                "efficiency",
                "IT W/card",
                "capex/card",
                "supply/yr",
                "purchasable",
                "source",
            ],
            chips,
        )
        + table(
            [
                "site",
                "juris.",
                "MW cap",
                "card cap",
                "PUE",
                "USD/kWh",
                "g/kWh",
                "build",
                "existing",
                "source",
            ],
            sites,
        )
        + table(["setting", "value"], money)
    )


def render_plan_report(p: Plan, sweep: tuple[SweepSpec, list[SweepPoint]] | None = None) -> str:
    sc = p.scenario
    sections = [section("Summary", _summary(p))]
    if p.explanation is not None:
        sections.append(
            section("Why the scenario is infeasible", _box(p.explanation.lines(), NOTE_STYLE))
        )
    sections += [
        section("Targets", _targets(p) + _fig_capacity(p)),
        section("Build schedule", _schedule(p)),
        section("Cost, power, energy and carbon per year", _per_year(p) + _fig_cost(p)),
        section("Power per site", _fig_power(p)),
        section("Vendor mix", _fig_vendor(p)),
    ]
    if p.binding:
        sections.append(
            section("What limits this plan", _box([b.sentence() for b in p.binding], OK_STYLE))
        )
    if sweep is not None:
        spec, points = sweep
        rows = [
            [
                f"{pt.value:g}",
                "yes" if pt.plan.feasible else "no",
                usd(pt.plan.npv_usd()),
                "; ".join(pt.plan.explanation.lines()[:2]) if pt.plan.explanation else "",
            ]
            for pt in points
        ]
        sections.append(
            section(
                f"Sensitivity: {spec.param}",
                _fig_sweep(spec, points)
                + table([spec.param, "feasible", "net present cost", "shortfall"], rows),
            )
        )
    sections.append(section("Assumptions (scenario and catalog facts)", _assumptions(sc)))
    sub = (
        f"{sc.description.strip() or sc.name} · {sc.years[0]}–{sc.years[-1]} · "
        f"{len(sc.sites)} sites · {len(sc.chips)} chip options · file {sc.file}"
    )
    return page(f"Capacity plan · {sc.name}", sub, sections)
