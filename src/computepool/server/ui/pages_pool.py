"""Pool-level pages: overview (utilisation, power, queue), tenants (quota, usage, budget),
usage and cost (ledger charts, CSV export)."""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Mapping

import numpy as np
from sqlalchemy.orm import Session

from computepool.admission.quota import quota_for
from computepool.model.pool import Flavor, Pool
from computepool.report.html import heat_grid, kpis
from computepool.report.svg import Series, line_chart, number, percent, stacked_bars
from computepool.report.theme import INK, colour, dash
from computepool.server import ledger, store
from computepool.server.ui import queries as Q
from computepool.server.ui.scope import WINDOWS, Viewer, edges, time_axis, window
from computepool.server.ui.views import Page, Panel, bar, e, link, num, rows_table, usd

WAITING = ("queued", "admitted")


def _window_links(path: str, params: Mapping[str, str], current: str, names) -> str:
    items = "".join(
        f"<a class='btn {'' if n == current else 'ghost'}' href='{e(link(path, dict(params), w=n))}'>{n}</a> "
        for n in names
    )
    return f"<div style='margin:.2rem 0 1rem'>{items}</div>"


def busy_now(s: Session, pool: Pool) -> np.ndarray:
    """Accelerators held per flavor now (every tenant's: the pool view anyone may read)."""
    held = np.zeros(len(pool.flavors))
    idx = {f.name: i for i, f in enumerate(pool.flavors)}
    for (_t, f), a in Q.running_by_tenant_flavor(s).items():
        if f in idx:
            held[idx[f]] += a
    return held


def heat_table(pool: Pool, held: np.ndarray) -> str:
    """Utilisation now as a region x accelerator-type grid (blank: no such flavor)."""
    cells = {
        f.name: (held[k] / c if (c := int(pool.capacity[k])) else 0.0, f"{int(held[k])}/{c}")
        for k, f in enumerate(pool.flavors)
    }
    return heat_grid(cells, "busy accelerators / installed, per region × accelerator type")


def overview(s: Session, pool: Pool, viewer: Viewer, params: Mapping[str, str], now: float) -> Page:
    w = window(params.get("w"))
    names = store.tenant_names(s)
    held = busy_now(s, pool)
    cap = pool.capacity.astype(float)
    power_kw = float((held * pool.flavor_power_kw).sum())
    counts = Q.status_counts(s, viewer.scope)
    waiting = sum(counts.get(k, 0) for k in WAITING)
    mine = "" if viewer.is_admin else " (yours)"
    tiles = kpis(
        [
            (
                "accelerators busy",
                f"{int(held.sum()):,} / {int(cap.sum()):,}",
                f"{held.sum() / max(cap.sum(), 1):.0%} of the pool",
            ),
            ("power draw", f"{power_kw:,.1f} kW", "busy accelerators × TDP × PUE"),
            ("jobs running" + mine, f"{counts.get('running', 0):,}", ""),
            (
                "queue length" + mine,
                f"{waiting:,}",
                f"{counts.get('admitted', 0):,} admitted, waiting",
            ),
            (
                "jobs finished" + mine,
                f"{sum(counts.get(k, 0) for k in ('succeeded', 'failed', 'cancelled')):,}",
                f"{counts.get('failed', 0):,} failed",
            ),
        ]
    )
    ed = edges(w, now)
    flavors = [f.name for f in pool.flavors]
    busy = Q.busy_series(s, flavors, ed, now, None)
    x = ed[:-1]
    util = busy / np.maximum(cap, 1)[None, :]
    overall = busy.sum(axis=1) / max(cap.sum(), 1)
    lines = [Series(f, util[:, i].tolist(), colour(i), dash(i)) for i, f in enumerate(flavors)]
    lines.append(Series("whole pool", overall.tolist(), INK))
    fmt = time_axis(w)
    util_chart = line_chart(
        x, lines, y_max=1.0, y_fmt=percent, x_fmt=fmt, title="utilisation", width=1160, height=280
    )
    power = (busy * pool.flavor_power_kw[None, :]).sum(axis=1)
    power_chart = line_chart(
        x, [Series("kW", power.tolist(), "#ea580c")], x_fmt=fmt, title="power draw (kW)", fill=True
    )
    queue = Q.queue_series(s, ed, now, viewer.scope)
    queue_chart = line_chart(
        x, [Series("jobs waiting" + mine, queue.tolist(), "#d97706")], x_fmt=fmt,
        title="queue length", fill=True, y_floor=1.0,
    )  # fmt: skip
    active = Q.active_by_tenant(s, viewer.scope)
    trows = []
    for t, st in sorted(active.items(), key=lambda kv: names.get(kv[0], "")):
        wj = sum(st.get(k, (0, 0))[0] for k in WAITING)
        wa = sum(st.get(k, (0, 0))[1] for k in WAITING)
        rj, ra = st.get("running", (0, 0))
        trows.append([e(names.get(t, "?")), f"{wj:,}", f"{wa:,}", f"{rj:,}", f"{ra:,}"])
    queue_table = rows_table(
        ["tenant", "jobs waiting", "accelerators asked", "jobs running", "accelerators held"], trows
    )
    intro = (
        f"<h1>Pool {e(pool.name)}</h1><p class='sub'>{len(pool.regions)} regions · "
        f"{len(pool.flavors)} flavors · {int(cap.sum()):,} accelerators · times in UTC</p>"
        + _window_links("/", params, w, ("1h", "6h", "24h", "7d"))
    )
    return Page(
        "Overview",
        "overview",
        intro,
        [
            Panel("kpis", "", tiles),
            Panel("heat", "Utilisation now", heat_table(pool, held)),
            Panel("util", f"Utilisation over the last {w} (per flavor)", util_chart),
            Panel("power", f"Power draw, last {w}", power_chart, half=True),
            Panel("queue", f"Queue length, last {w}", queue_chart, half=True),
            Panel("queues", "Queue by tenant" if viewer.is_admin else "Your jobs", queue_table),
        ],
    )


# ---- tenants ---------------------------------------------------------------------------
def fair_share_keys(
    tenants: list, running: Mapping[tuple[int, str], int], pool: Pool
) -> dict[int, float]:
    """Borrowed accelerators / weight per tenant: the key by which weighted fair queueing
    hands out borrowed capacity (lower goes first; ``admission/quota.py``)."""
    out = {}
    for t in tenants:
        qs = store.to_tenant(t).quotas
        borrowed = 0.0
        if qs:
            for f in pool.flavors:
                used = running.get((t.id, f.name), 0)
                borrowed += max(used - quota_for(qs, f).nominal, 0.0)
        out[t.id] = borrowed / max(t.weight, 1e-9)
    return out


def quota_key(quotas: Mapping, flavor: Flavor) -> str | None:
    """The quota entry that applies to ``flavor`` (``admission/quota.py: quota_for`` order)."""
    for key in (flavor.name, flavor.accelerator, f"{flavor.region}/*", "*"):
        if key in quotas:
            return key
    return None


def _budget(limit: float | None, used: float, fmt) -> str:
    if limit is None:
        return f"{fmt(used)}<br><span class='muted'>no budget</span>"
    left = limit - used
    style = "color:var(--bad);font-weight:600" if left <= 0 else "font-weight:600"
    return f"{fmt(used)} of {fmt(limit)}<br><span style='{style}'>{fmt(max(left, 0.0))} left</span>"


def _quota_rows(t, quotas: Mapping, running: Mapping, pool: Pool) -> list[list[str]]:
    """One row per quota entry (``*``, ``H100``, ``cn-ulanqab/*``, a flavor) with what the
    tenant holds on the flavors it covers; flavors used without an entry get their own."""
    groups: dict[str, list[Flavor]] = {}
    for f in pool.flavors:
        groups.setdefault(quota_key(quotas, f) or f"({f.name})", []).append(f)
    out = []
    for key, flavors in groups.items():
        q = quotas.get(key)
        used = [running.get((t.id, f.name), 0) for f in flavors]
        if q is None and not any(used):
            continue
        nom = q.nominal if q else 0.0
        borrowed = sum(max(u - nom, 0.0) for u in used)
        cap = nom + (q.borrowing_limit if q and q.borrowing_limit is not None else 0.0)
        scope = f"{len(flavors)} flavors" if len(flavors) > 1 else flavors[0].name
        out.append(
            [
                e(t.name),
                f"<code>{e(key)}</code> <span class='muted'>{e(scope)}</span>",
                f"{nom:g}" if q else "–",
                "cohort's" if q is None or q.borrowing_limit is None else f"{q.borrowing_limit:g}",
                "all" if q is None or q.lending_limit is None else f"{q.lending_limit:g}",
                f"{sum(used):,}",
                f"{borrowed:,.0f}",
                bar(sum(used), max(cap, nom, 1.0) * len(flavors), nom * len(flavors)),
            ]
        )
    return out


def tenants_page(s: Session, pool: Pool, viewer: Viewer, over_budget: Collection[str]) -> Page:
    rows = Q.tenant_rows(s, viewer.scope)
    every = Q.tenant_rows(s, None)
    running = Q.running_by_tenant_flavor(s)
    active = Q.active_by_tenant(s, viewer.scope)
    spent = ledger.spent_by_tenant(s, pool)
    keys = fair_share_keys(every, running, pool)
    order = sorted(keys, key=lambda t: (keys[t], t))
    summary, detail = [], []
    for t in rows:
        st = active.get(t.id, {})
        held = sum(a for (tid, _f), a in running.items() if tid == t.id)
        wj = sum(st.get(k, (0, 0))[0] for k in WAITING)
        quotas = store.to_tenant(t).quotas
        nominal = sum(quota_for(quotas, f).nominal for f in pool.flavors) if quotas else None
        hours, dollars = spent.get(t.name, (0.0, 0.0))
        flag = (
            " <span class='pill' style='background:#dc2626'>over budget</span>"
            if t.name in over_budget
            else ""
        )
        summary.append(
            [
                f"<b>{e(t.name)}</b>{flag}",
                e(t.cohort or "–"),
                f"{t.weight:g}",
                f"{st.get('running', (0, 0))[0]:,}",
                f"{wj:,}",
                f"{held:,}" + (f" / {nominal:,.0f}" if nominal is not None else ""),
                bar(held, max(nominal, 1.0), nominal)
                if nominal is not None
                else "<span class='muted'>no quota: the pool's capacity</span>",
                f"#{order.index(t.id) + 1} of {len(order)} <span class='muted'>"
                f"({keys[t.id]:.1f})</span>",
                _budget(t.budget_accel_hours, hours, lambda v: f"{v:,.1f} h"),
                _budget(t.budget_usd, dollars, usd),
            ]
        )
        if quotas:
            detail += _quota_rows(t, quotas, running, pool)
    table = rows_table(
        ["tenant", "cohort", "weight", "running", "waiting", "in use / nominal", "",
         "fair-share position", "accelerator-hours", "spent (USD)"],
        summary,
    )  # fmt: skip
    legend = (
        "<p class='note'>Bar: accelerators in use; blue within the nominal quota (tick), amber "
        "borrowed from the cohort. Fair-share position: borrowed accelerators ÷ weight, in "
        "brackets; the lowest is next to get the capacity other tenants lend.</p>"
    )
    quota_table = rows_table(
        ["tenant", "quota entry", "nominal per flavor", "borrowing limit", "lending limit",
         "in use", "borrowed", ""],
        detail,
        left=2,
    )  # fmt: skip
    title = "Tenants" if viewer.is_admin else f"Tenant {viewer.tenant}"
    return Page(
        title,
        "tenants",
        f"<h1>{e(title)}</h1><p class='sub'>quota vs usage vs borrowed, fair-share position, "
        "budget left</p>",
        [
            Panel("tenants", "Quota, usage and budget", table + legend),
            Panel("quotas", "Quotas", quota_table),
        ],
    )


# ---- usage and cost --------------------------------------------------------------------
USAGE_WINDOWS = ("24h", "7d", "30d")


def calendar_edges(w: str, now: float) -> np.ndarray:
    """Whole hours (24h) or whole UTC days (7d, 30d) up to the one now is in."""
    step, n = (3600.0, 24) if w == "24h" else (86400.0, 7 if w == "7d" else 30)
    last = (now // step + 1) * step
    return last - step * np.arange(n, -1, -1)


def usage_page(
    s: Session, pool: Pool, viewer: Viewer, params: Mapping[str, str], now: float
) -> Page:
    w = window(params.get("w"), "7d")
    if w not in USAGE_WINDOWS:
        w = "7d"
    since = now - WINDOWS[w][0]
    rows = Q.usage(s, pool, viewer.scope, since, now)
    tot = [
        sum(getattr(u, k) for u in rows)
        for k in ("accel_seconds", "energy_kwh", "cost_usd", "carbon_kg")
    ]
    tiles = kpis(
        [
            ("accelerator-hours", num(tot[0] / 3600.0), f"last {w}"),
            ("energy", f"{num(tot[1])} kWh", "TDP × PUE"),
            ("cost", usd(tot[2]), "flavor price per accelerator-hour"),
            ("carbon", f"{num(tot[3])} kg CO₂", "energy × grid intensity"),
            ("jobs metered", f"{sum(u.jobs for u in rows):,}", ""),
        ]
    )
    ed = calendar_edges(w, now)
    labels, cost = Q.ledger_series(s, pool, ed, viewer.scope, viewer.is_admin, now)
    fmt = time_axis("24h" if w == "24h" else "7d")
    cats = [fmt(t) for t in ed[:-1]]
    chart = stacked_bars(
        cats,
        [Series(k, cost[:, i].tolist(), colour(i)) for i, k in enumerate(labels)],
        y_fmt=lambda v: "$" + number(v),
        title="cost per " + ("hour" if w == "24h" else "day"),
    )
    table = rows_table(
        ["tenant", "flavor", "accelerator-hours", "energy (kWh)", "cost", "carbon (kg CO₂)", "jobs"],
        [
            [e(u.tenant), e(u.flavor), num(u.accel_seconds / 3600.0, 2), num(u.energy_kwh, 2),
             usd(u.cost_usd), num(u.carbon_kg, 2), f"{u.jobs:,}"]
            for u in rows
        ],
        left=2,
    )  # fmt: skip
    csv_href = link("/usage.csv", {"w": w})
    intro = (
        "<h1>Usage and cost</h1><p class='sub'>from the ledger: one entry per job per placement "
        "interval, plus what running jobs have used so far</p>"
        + _window_links("/usage", params, w, USAGE_WINDOWS)
    )
    export = f"<p><a class='btn ghost' id='csv' href='{e(csv_href)}' download>Export CSV</a></p>"
    by = "tenant" if viewer.is_admin else "flavor"
    return Page(
        "Usage",
        "usage",
        intro,
        [
            Panel("kpis", "", tiles),
            Panel("chart", f"Cost per {by}, last {w}", chart),
            Panel("table", "By tenant and flavor", table + export),
        ],
        poll=5.0,
    )


def usage_csv(rows: list[ledger.Usage]) -> str:
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(
        ["tenant", "flavor", "accelerator_hours", "energy_kwh", "cost_usd", "carbon_kg", "jobs"]
    )
    for u in rows:
        out.writerow(
            [u.tenant, u.flavor, f"{u.accel_seconds / 3600.0:.6f}", f"{u.energy_kwh:.6f}",
             f"{u.cost_usd:.6f}", f"{u.carbon_kg:.6f}", u.jobs]
        )  # fmt: skip
    return buf.getvalue()
