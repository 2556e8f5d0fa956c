"""Columns of ``cpool audit``, ``cpool route`` and ``cpool scenario`` for ``-o table`` (80
columns) and ``-o wide``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.markup import escape

from computepool.cli.output import Col


def _when(r: dict[str, Any]) -> str:
    """Live records carry a calendar time; simulated ones hours of simulated time."""
    if r.get("at"):
        return datetime.fromisoformat(r["at"]).astimezone().strftime("%m-%d %H:%M")
    return f"{r['time'] / 3600:.2f}"


def _list(xs: Sequence[str] | None) -> str:
    return escape(", ".join(xs or ())) or "-"


def audit_columns(records: Sequence[dict[str, Any]]) -> list[Col]:
    """The tenant column is left to ``wide`` when every job id already names its tenant
    (simulated ids read ``tenant/class/n``)."""
    live = any(r.get("at") for r in records)
    named = all(str(r["job"]).startswith(f"{r.get('tenant', '')}/") for r in records)
    cols = [
        Col("TIME" if live else "TIME (H)", _when, key=True, right=not live, optional=True),
        Col("JOB", lambda r: escape(str(r["job"])), key=True),
        Col("TENANT", lambda r: escape(r.get("tenant", "") or "-"), key=True,
            wide=named and bool(records)),
        Col("OUTCOME", lambda r: escape(str(r["outcome"])), key=True),
        Col("REGION", lambda r: escape(r.get("region") or "-"), key=True),
        Col("DECIDED BY", lambda r: _list(r.get("decided_by"))),
        Col("FLAVOR", lambda r: escape(r.get("flavor") or "-"), key=True, wide=True),
        Col("RULES CONSULTED", lambda r: _list(r.get("rules_consulted")), wide=True),
        Col("APPROVALS", lambda r: _list(r.get("approvals")), wide=True),
        Col("GB MOVED", lambda r: f"{r.get('transfer_gb', 0):,.0f}", key=True, right=True,
            wide=True),
        Col("REASON", lambda r: escape(r.get("reason") or "-"), wide=True),
    ]  # fmt: skip
    return cols


def _ms(key: str):
    return lambda o: f"{o[key]:.0f}"


ROUTE_COLUMNS = [
    Col("FLAVOR", lambda o: escape(o["flavor"]), key=True),
    Col("LEGAL", lambda o: "yes" if o["legal"] else "no", key=True),
    Col("RULE", lambda o: escape(o["rule"] or "-")),
    Col("RTT MS", _ms("rtt_ms"), key=True, right=True),
    Col("QUEUE MS", _ms("queue_ms"), key=True, right=True, wide=True),
    Col("COMPUTE MS", _ms("compute_ms"), key=True, right=True, wide=True),
    Col("TOTAL MS", _ms("total_ms"), key=True, right=True),
    Col("MEETS", lambda o: "yes" if o["meets"] else "no", key=True),
]


def route_verdict(ans: dict[str, Any]) -> str:
    """``TARGET: REASON`` once, though the reason may already start with the target."""
    target, reason = ans["target"], ans["reason"]
    reason = reason.removeprefix(f"{target}:").strip()
    return f"[bold]{escape(target)}[/]: {escape(reason)}"


def _share(s: float) -> str:
    return "<1%" if 0 < s < 0.005 else f"{s:.0%}"


def _regions(shares: dict[str, float]) -> str:
    ordered = sorted(shares.items(), key=lambda kv: -kv[1])
    return escape(", ".join(f"{r} {_share(s)}" for r, s in ordered)) or "-"


def _opt(v: float | None, pattern: str) -> str:
    return "-" if v is None else pattern.format(v)


SCENARIO_COLUMNS = [
    Col("TENANT", lambda r: escape(r["tenant"]), key=True),
    Col("JOBS", lambda r: f"{r['jobs']:,}", key=True, right=True),
    Col("DONE", lambda r: f"{r['completed']:,}", key=True, right=True),
    Col("REJECTED", lambda r: f"{r['rejected']:,}", key=True, right=True),
    Col("AVG JCT H", lambda r: _opt(r["avg_jct_hours"], "{:.2f}"), key=True, right=True),
    Col("COST USD", lambda r: f"{r['cost_usd']:,.0f}", key=True, right=True),
    Col("TB MOVED", lambda r: f"{r['transfer_tb']:.2f}", key=True, right=True, wide=True),
    Col("T CO2", lambda r: f"{r['carbon_t']:.2f}", key=True, right=True, wide=True),
    Col("DEADLINE", lambda r: _opt(r["deadline_hit_rate"], "{:.1%}"), key=True, right=True),
    Col("REGIONS", lambda r: _regions(r["region_share"])),
]


def rule_doc(r: Any) -> dict[str, Any]:
    """One residency rule as plain data (``cpool rules -o json``)."""
    return {
        "id": r.id,
        "ciio_only": r.ciio_only,
        "data_classes": list(r.data_classes),
        "origins": list(r.origins),
        "allow": [
            {"to": list(g.to), "requires": list(g.requires), "persons_below": g.persons_below,
             "counter": g.counter, "relaxed_only": g.relaxed_only}
            for g in r.allow
        ],
        "basis": r.basis,
    }  # fmt: skip


def _grants(rule: dict[str, Any]) -> str:
    return "; ".join(
        "/".join(g["to"])
        + (f" if {' + '.join(g['requires'])}" if g["requires"] else "")
        + (f" <{g['persons_below']:,} {g['counter']}" if g["persons_below"] else "")
        + (" (relaxed only)" if g["relaxed_only"] else "")
        for g in rule["allow"]
    )


RULE_COLUMNS = [
    Col("ID", lambda r: escape(r["id"] + (" [CIIO]" if r["ciio_only"] else "")), key=True),
    Col("ORIGINS", lambda r: escape(", ".join(r["origins"])), key=True),
    Col("DATA CLASSES", lambda r: escape(", ".join(r["data_classes"])), wrap=True),
    Col("ALLOWED (CONDITIONS)", lambda r: escape(_grants(r)), wrap=True),
    Col("BASIS", lambda r: escape(r["basis"]), wide=True),
]
