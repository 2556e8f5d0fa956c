"""Job pages: the filtered list (with why each waiting job waits), one job's timeline,
placement, events and logs, and the residency audit."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from computepool.admission.quota import quota_for
from computepool.model.pool import Pool
from computepool.model.status import Status
from computepool.report.html import kpis
from computepool.report.svg import Lane, Span, timeline
from computepool.report.theme import STATUS_COLOURS, colour
from computepool.server import store
from computepool.server.db import ACTIVE, FINAL
from computepool.server.ledger import meter
from computepool.server.ui import queries as Q
from computepool.server.ui.scope import Viewer
from computepool.server.ui.views import (
    Page,
    Panel,
    duration,
    e,
    link,
    page_of,
    pager,
    pill,
    rows_table,
    when,
)

PER_PAGE = 50
STATUSES = ("queued", "admitted", "running", "succeeded", "failed", "cancelled", "rejected")


@dataclass(frozen=True)
class TenantState:
    """What decides why a tenant's job waits: budget, quota headroom."""

    over_budget: bool
    held: int
    #: Nominal + borrowing limit over all flavors; inf: no limit of its own.
    limit: float


#: The scheduler's reason a job (by id) waits, or None (``LiveService.pending_reason``).
Pending = Callable[[int], Status | None]


def tenant_states(
    s: Session, pool: Pool, over_budget: Collection[str], names: Mapping[int, str]
) -> dict[int, TenantState]:
    running = Q.running_by_tenant_flavor(s)
    out = {}
    for t in Q.tenant_rows(s, None):
        quotas = store.to_tenant(t).quotas
        limit = math.inf
        if quotas:  # without a cohort there is no one to borrow from
            limit = 0.0
            for f in pool.flavors:
                q = quota_for(quotas, f)
                room = 0.0 if not t.cohort else q.borrowing_limit
                limit += q.nominal + (math.inf if room is None else room)
        held = sum(a for (tid, _f), a in running.items() if tid == t.id)
        out[t.id] = TenantState(names.get(t.id, "") in over_budget, held, limit)
    return out


def why(job: Mapping, state: TenantState | None, pending: Pending | None = None) -> str:
    """A short reason for a job's state: why it waits (the scheduler's own reason when it
    has one: quota, placement, check, capacity), or why it ended as it did."""
    st = job["status"]
    if job.get("cancel_requested") and st not in FINAL:
        return "cancel requested"
    if st in ("queued", "admitted") and pending is not None:
        said = pending(int(job["id"]))
        if said is not None:
            return f"{said.reason} [{said.source}]"
    if st == "queued":
        return "stored; the scheduler admits it next round"
    if st == "admitted":
        if state is not None and state.over_budget:
            return "tenant's budget is used up"
        if state is not None and state.held + job["accelerators"] > state.limit:
            return f"tenant at its quota ({state.held:,} of {state.limit:,.0f} in use)"
        if job.get("reason"):
            return f"requeued ({job['reason']}); waiting for accelerators"
        return f"waiting for {job['accelerators']} free accelerator(s)"
    reason = job.get("reason") or ""
    return "" if reason == st else reason


def _filter_form(
    viewer: Viewer, params: Mapping[str, str], pool: Pool, names: Sequence[str]
) -> str:
    def options(values: Sequence[str], current: str, blank: str) -> str:
        opts = [f"<option value=''>{e(blank)}</option>"]
        opts += [
            f"<option value='{e(v)}'{' selected' if v == current else ''}>{e(v)}</option>"
            for v in values
        ]
        return "".join(opts)

    tenant = (
        f"<label>tenant<select name='tenant' id='f-tenant'>{options(names, params.get('tenant', ''), 'all tenants')}</select></label>"
        if viewer.is_admin
        else ""
    )
    return (
        "<form class='filters' method='get' action='/jobs'>"
        f"{tenant}<label>state<select name='status' id='f-status'>"
        f"{options(STATUSES, params.get('status', ''), 'any state')}</select></label>"
        f"<label>flavor<select name='flavor' id='f-flavor'>"
        f"{options([f.name for f in pool.flavors], params.get('flavor', ''), 'any flavor')}</select></label>"
        f"<label>name contains<input name='q' value='{e(params.get('q', ''))}' size='14'></label>"
        "<button class='btn' type='submit'>Filter</button>"
        "<a class='btn ghost' href='/jobs'>Reset</a></form>"
    )


def _submit_form(pool: Pool) -> str:
    accels = sorted({f.accelerator for f in pool.flavors})
    return (
        "<details id='submit'><summary>Submit a job</summary>"
        "<form class='filters' method='post' action='/ui/jobs'>"
        "<label>name<input name='name' id='s-name' size='14'></label>"
        "<label>command<input name='command' id='s-command' size='34' required "
        "placeholder='python train.py'></label>"
        "<label>workers<input name='workers' type='number' min='1' value='1' style='width:5rem'></label>"
        "<label>accelerators / worker<input name='accelerators_per_worker' type='number' min='1' "
        "value='1' style='width:5rem'></label>"
        f"<label>accelerator types<input name='accelerator_types' size='16' placeholder='any, e.g. {e(', '.join(accels[:2]))}'></label>"
        "<label>work (H100-s)<input name='work' type='number' min='1' value='3600' style='width:7rem'></label>"
        "<button class='btn' id='s-go' type='submit'>Submit</button></form></details>"
    )


def jobs_page(
    s: Session,
    pool: Pool,
    viewer: Viewer,
    params: Mapping[str, str],
    over_budget: Collection[str],
    now: float,
    pending: Pending | None = None,
) -> Page:
    names = store.tenant_names(s)
    tenant_id = viewer.scope
    if viewer.is_admin and params.get("tenant"):
        ids = [i for i, n in names.items() if n == params["tenant"]]
        tenant_id = ids[0] if ids else -1
    status = params.get("status", "")
    f = Q.JobFilter(
        tenant_id=tenant_id,
        statuses=(status,) if status in STATUSES else (),
        flavor=params.get("flavor", ""),
        name=params.get("q", ""),
    )
    page = page_of(params)
    rows, total = Q.jobs_page(s, f, PER_PAGE, (page - 1) * PER_PAGE)
    states = tenant_states(s, pool, over_budget, names)
    out = []
    for j in rows:
        end = j["finished_at"] if j["finished_at"] is not None else now
        waited = (j["started_at"] or end) - j["submitted_at"]
        ran = end - j["started_at"] if j["started_at"] is not None else None
        cells = [f"<a href='/jobs/{j['id']}'>{j['id']}</a>", e(j["name"] or "–")]
        if viewer.is_admin:
            cells.append(e(names.get(j["tenant_id"], "?")))
        cells += [
            pill(j["status"]),
            f"{j['accelerators']:,}",
            e(j["flavor"] or "–"),
            when(j["submitted_at"], now),
            duration(waited),
            duration(ran),
            f"<span class='muted'>{e(why(j, states.get(j['tenant_id']), pending))}</span>",
        ]
        out.append(cells)
    headers = ["id", "name", *(["tenant"] if viewer.is_admin else []), "state", "accel.",
               "flavor", "submitted", "waited", "ran", "why"]  # fmt: skip
    keep = {k: v for k, v in params.items() if k in ("tenant", "status", "flavor", "q")}
    table = rows_table(headers, out, left=3 if viewer.is_admin else 2, text=1) + pager(
        "/jobs", keep, page, PER_PAGE, total
    )
    msg = ""
    if params.get("error"):
        msg = f"<div class='alert' role='alert' id='ui-error'>{e(params['error'])}</div>"
    intro = (
        "<h1>Jobs</h1><p class='sub'>newest first · times in UTC · "
        + ("every tenant's jobs" if viewer.is_admin else f"jobs of {e(viewer.tenant)}")
        + "</p>"
        + msg
        + ("" if viewer.is_admin else _submit_form(pool))
        + _filter_form(viewer, params, pool, sorted(names.values()))
    )
    return Page("Jobs", "jobs", intro, [Panel("jobs", "", table)])


# ---- one job ---------------------------------------------------------------------------
def _placement_rows(allocs: list[dict], now: float) -> list[list[str]]:
    out = []
    for a in allocs:
        workers = "<br>".join(
            f"rank {r}: <span class='mono'>{e(w[0])}</span> [{e(','.join(str(d) for d in w[1]))}]"
            for r, w in enumerate(a["workers"] or [])
        )
        out.append(
            [
                str(a["attempt"]),
                e(a["flavor"]),
                f"{a['accelerators']:,}",
                workers or "–",
                when(a["started_at"], now),
                when(a["ended_at"], now) if a["ended_at"] is not None else "running",
                e(a["end_reason"] or ""),
            ]
        )
    return out


def _timeline(job: Mapping, events: list[dict], allocs: list[dict], now: float) -> str:
    t0 = job["submitted_at"]
    t1 = job["finished_at"] or now
    t1 = max(t1, *(ev["at"] for ev in events), t0 + 1.0)
    marks = tuple(
        (
            ev["at"],
            STATUS_COLOURS.get(ev["kind"], "#64748b"),
            f"{ev['kind']} {when(ev['at'], now)} {ev['detail']}",
        )
        for ev in events
    )
    lanes = [Lane("events", marks=marks)]
    for k, a in enumerate(allocs):
        end = a["ended_at"] if a["ended_at"] is not None else now
        title = f"attempt {a['attempt']} on {a['flavor']}: {duration(end - a['started_at'])}"
        lanes.append(
            Lane(
                f"#{a['attempt']} {a['flavor']}"[:30],
                [Span(a["started_at"], end, colour(k), title)],
            )
        )

    def rel(t: float) -> str:
        if t <= t0:
            return "submitted"
        return f"+{t - t0:.1f}s" if t1 - t0 < 60 else "+" + duration(t - t0)

    legend = "".join(
        f"<span><i style='background:{STATUS_COLOURS.get(k, '#64748b')}'></i>{e(k)}</span>"
        for k in dict.fromkeys(ev["kind"] for ev in events)
    )
    return (
        timeline(lanes, t0, t1, x_fmt=rel, title="job timeline")
        + f"<div class='legend'>{legend}</div>"
    )


def job_page(
    s: Session,
    job: Mapping,
    viewer: Viewer,
    logs: str,
    over_budget: Collection[str],
    pool: Pool,
    now: float,
    params: Mapping[str, str],
    pending: Pending | None = None,
) -> Page:
    names = store.tenant_names(s)
    events = Q.job_events(s, job["id"])
    allocs = Q.job_allocations(s, job["id"])
    hours, dollars, kwh = Q.job_cost(s, job["id"])
    for a in allocs:  # what the open interval has used so far
        if a["ended_at"] is None:
            m = meter(pool, a["flavor"], a["accelerators"], now - a["started_at"])
            hours, dollars, kwh = (
                hours + m.accel_seconds / 3600,
                dollars + m.cost_usd,
                kwh + m.energy_kwh,
            )
    states = tenant_states(s, pool, over_budget, names) if job["status"] in ACTIVE else {}
    spec = job.get("spec") or {}
    end = job["finished_at"] if job["finished_at"] is not None else now
    kv = [
        ("tenant", e(names.get(job["tenant_id"], "?"))),
        ("state", pill(job["status"]) + f" <span class='muted'>{e(why(job, states.get(job['tenant_id']), pending))}</span>"),
        ("command", f"<code>{e(spec.get('command', ''))}</code>"),
        ("shape", f"{spec.get('workers', 1)} worker(s) × {spec.get('accelerators_per_worker', 1)} accelerator(s)"),
        ("accepts", e(", ".join(spec.get("accelerator_types") or []) or "any accelerator type")
         + (f" · stacks {e(', '.join(spec.get('stacks')))}" if spec.get("stacks") else "")),
        ("flavor", e(job["flavor"] or "–")),
        ("submitted", when(job["submitted_at"], now)),
        ("waited", duration((job["started_at"] or end) - job["submitted_at"])),
        ("ran", duration(end - job["started_at"]) if job["started_at"] else "–"),
        ("attempts · preemptions", f"{job['attempts']} · {job['preemptions']}"),
        ("metered", f"{hours:,.3f} accelerator-hours · ${dollars:,.2f} · {kwh:,.3f} kWh"),
    ]  # fmt: skip
    summary = "<dl class='kv'>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in kv) + "</dl>"
    ev_table = rows_table(
        ["time", "event", "detail"],
        [[when(ev["at"], now), pill(ev["kind"]), e(ev["detail"])] for ev in events],
        left=3,
    )
    place = rows_table(
        ["attempt", "flavor", "accel.", "workers: node [devices]", "start", "end", "ended by"],
        _placement_rows(allocs, now),
        left=4,
    )
    recs, _total, _counts = Q.residency_page(s, None, 20, 0, job_id=job["id"])
    res = rows_table(
        ["time", "outcome", "flavor", "allowed by", "rules consulted", "reason"],
        [_residency_cells(r, now)[1:] for r in recs],
        left=3,
        text=3,
    )
    cancel = ""
    if job["status"] not in FINAL and not job.get("cancel_requested"):
        cancel = (
            f"<form method='post' action='/ui/jobs/{job['id']}/cancel' style='display:inline'>"
            "<button class='btn danger' id='cancel' type='submit'>Cancel job</button></form>"
        )
    msg = (
        f"<div class='alert' role='alert'>{e(params['error'])}</div>" if params.get("error") else ""
    )
    head = (
        f"<h1>Job {job['id']}{(' · ' + e(job['name'])) if job['name'] else ''} "
        f"{pill(job['status'])}</h1>{msg}<p>{cancel}</p>"
    )
    intro = "<p class='sub' style='margin:0'><a href='/jobs'>← jobs</a></p>"
    return Page(
        f"Job {job['id']}",
        "jobs",
        intro,
        [
            Panel("head", "", head),
            Panel("summary", "Summary", summary, half=True),
            Panel("events", "Events", ev_table, half=True),
            Panel("timeline", "Timeline", _timeline(job, events, allocs, now)),
            Panel("placement", "Placement", place),
            Panel("residency", "Residency decisions", res),
            Panel(
                "logs",
                "Logs (last 64 KiB)",
                f"<pre class='log' id='log'>{e(logs) or ('(no output)' if job['status'] in FINAL else '(no output yet)')}</pre>",
            ),
        ],
        poll=0.0 if job["status"] in FINAL else 1.5,
    )


# ---- residency audit -------------------------------------------------------------------
def _residency_cells(r: Mapping, now: float, tenant: str = "") -> list[str]:
    d = r["detail"] or {}
    target = str(r["target"] or "")
    job = target[3:] if target.startswith("job") else ""
    rules = sorted(dict.fromkeys(str(x).split("/", 1)[0] for x in d.get("decided_by") or []))
    outcome = str(d.get("outcome", ""))
    colour_ = "#16a34a" if outcome == "allowed" else "#dc2626"
    transfer = d.get("transfer_gb") or 0.0
    return [
        f"<a href='/jobs/{e(job)}'>{e(job)}</a>" if job.isdigit() else "–",
        when(r["at"], now),
        f"<span class='pill' style='background:{colour_}'>{e(outcome)}</span>",
        e(d.get("flavor") or d.get("region") or "–")
        + (f"<br><span class='muted'>moves {transfer:,.0f} GB</span>" if transfer else ""),
        "<b>" + e(", ".join(rules) or "(no datasets)") + "</b>",
        f"<span class='muted'>{e(', '.join(d.get('rules_consulted') or []))}</span>",
        e(d.get("reason") or ""),
    ]


def residency_page(s: Session, viewer: Viewer, params: Mapping[str, str], now: float) -> Page:
    outcome = params.get("outcome", "") if params.get("outcome") in ("allowed", "rejected") else ""
    page = page_of(params)
    recs, total, counts = Q.residency_page(
        s, viewer.scope, PER_PAGE, (page - 1) * PER_PAGE, outcome
    )
    by_rule: dict[str, int] = {}
    sample, _, _ = Q.residency_page(s, viewer.scope, 5000, 0, "allowed")
    for r in sample:
        for rule in dict.fromkeys(
            str(x).split("/", 1)[0] for x in (r["detail"] or {}).get("decided_by") or []
        ):
            by_rule[rule] = by_rule.get(rule, 0) + 1
    tiles = kpis(
        [
            (
                "placements allowed",
                f"{counts.get('allowed', 0):,}",
                "each with the rule that allowed it",
            ),
            ("rejections", f"{counts.get('rejected', 0):,}", "no legal flavor for the job's data"),
        ]
    )
    rules = (
        rows_table(
            ["rule", "placements allowed"],
            [
                [f"<b>{e(k)}</b>", f"{v:,}"]
                for k, v in sorted(by_rule.items(), key=lambda kv: -kv[1])
            ],
        )
        + f"<p class='note'>over the newest {min(len(sample), 5000):,} allowed placements</p>"
    )
    table = rows_table(
        ["job", "time", "outcome", "where", "allowed by", "rules consulted", "reason"],
        [_residency_cells(r, now) for r in recs],
        left=4,
        text=3,
    ) + pager("/residency", {"outcome": outcome}, page, PER_PAGE, total)
    links = "".join(
        f"<a class='btn {'' if o == outcome else 'ghost'}' href='{e(link('/residency', {}, outcome=o))}'>{e(o or 'all')}</a> "
        for o in ("", "allowed", "rejected")
    )
    intro = (
        "<h1>Residency audit</h1><p class='sub'>every placement decision of the residency check: "
        "where each job's data went and which rule allowed it</p>"
        f"<div style='margin:.2rem 0 1rem'>{links}</div>"
    )
    return Page(
        "Residency",
        "residency",
        intro,
        [
            Panel("kpis", "", tiles),
            Panel("rules", "Allowed by rule", rules),
            Panel("decisions", "Decisions", table),
        ],
        poll=5.0,
    )
