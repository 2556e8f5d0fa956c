"""How ``cpool jobs / job / usage`` show what the server returns: columns for ``-o table``
(80 columns) and ``-o wide``; ``-o json`` prints the server's documents unchanged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.table import Table

from computepool.cli.common import console
from computepool.cli.output import Col, Output, build_table, emit, print_json, print_table

STATUS_STYLE = {
    "running": "green",
    "succeeded": "bold green",
    "failed": "red",
    "cancelled": "yellow",
    "rejected": "red",
    "queued": "cyan",
    "admitted": "cyan",
}


def status_markup(s: str) -> str:
    return f"[{STATUS_STYLE.get(s, 'white')}]{s}[/]"


def _esc(text: object) -> str:
    from rich.markup import escape

    return escape(str(text))


def job_columns(when: Callable[[str | None], str], age: Callable[[str | None], str]) -> list[Col]:
    return [
        Col("ID", lambda j: str(j["id"]), key=True, right=True),
        Col("TENANT", lambda j: _esc(j["tenant"]), key=True),
        Col("NAME", lambda j: _esc(j["name"] or "-")),
        Col("STATUS", lambda j: status_markup(j["status"]), key=True),
        Col("ACC", lambda j: str(j["accelerators"]), key=True, right=True, optional=True),
        Col("FLAVOR", lambda j: _esc(j["flavor"] or "-"), key=True),
        Col("AGE", lambda j: age(j["submitted_at"]), key=True, right=True, optional=True),
        Col("SUBMITTED", lambda j: when(j["submitted_at"]), key=True, wide=True),
        Col("STARTED", lambda j: when(j["started_at"]), key=True, wide=True),
        Col("ENDED", lambda j: when(j["finished_at"]), key=True, wide=True),
        Col("ATTEMPTS", lambda j: str(j.get("attempts", "-")), wide=True, right=True),
        Col("EXIT", lambda j: _opt(j.get("exit_code")), wide=True, right=True),
        Col("REASON", lambda j: _esc(j.get("reason") or "-"), wide=True),
    ]


def _opt(v: Any) -> str:
    return "-" if v is None else str(v)


def print_jobs(rows: list[dict[str, Any]], fmt: Output, when, age) -> None:
    emit(fmt, job_columns(when, age), rows, data={"jobs": rows})


def print_job(j: dict[str, Any], fmt: Output, when: Callable[[str | None], str]) -> None:
    """One job: its facts as name/value lines, then its events and placements."""
    if fmt == Output.json:
        print_json(j)
        return
    wide = fmt == Output.wide
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    for k, v in (
        ("job", f"{j['id']} {_esc(j['name'] or '')}".rstrip()),
        ("tenant", _esc(j["tenant"])),
        ("status", status_markup(j["status"])),
        ("accelerators", str(j["accelerators"])),
        ("flavor", _esc(j["flavor"] or "-")),
        ("submitted", when(j["submitted_at"])),
        ("started", when(j.get("started_at"))),
        ("ended", when(j.get("finished_at"))),
        ("exit", _opt(j.get("exit_code"))),
        ("reason", _esc(j.get("reason") or "-")),
        ("waiting", _pending(j.get("pending_reason"))),
    ):
        if v not in ("-", "") or k in ("flavor",):
            facts.add_row(k, v)
    console.print(facts)
    events = [
        Col("AT", lambda e: when(e["at"]), key=True),
        Col("EVENT", lambda e: _esc(e["kind"]), key=True),
        Col("DETAIL", lambda e: _esc(e["detail"] or "-")),
    ]
    console.print()
    print_table(build_table(events, j["events"], wide, console.width, "events"), wide)
    if not j["allocations"]:
        return
    placements = [
        Col("ATTEMPT", lambda a: str(a["attempt"]), key=True, right=True),
        Col("FLAVOR", lambda a: _esc(a["flavor"]), key=True),
        Col("WORKERS (node: devices)", lambda a: _esc(_workers(a["workers"]))),
        Col("START", lambda a: when(a["started_at"]), key=True),
        Col("END", lambda a: when(a["ended_at"]), key=True),
        Col("WHY", lambda a: _esc(a["end_reason"] or "-")),
    ]
    console.print()
    print_table(build_table(placements, j["allocations"], wide, console.width, "placements"), wide)


def _pending(p: dict[str, Any] | None) -> str:
    """Why a waiting job waits, as the scheduler said: ``[source] reason``."""
    return "-" if not p else _esc(f"[{p['source']}] {p['reason']}")


def _workers(workers: list[Any]) -> str:
    return ", ".join(f"{n}:{','.join(map(str, d))}" for n, d in workers)


def _num(v: float) -> str:
    return f"{v:,.2f}" if abs(v) >= 0.01 or v == 0 else f"{v:.2g}"


USAGE_COLUMNS = [
    Col("TENANT", lambda r: _esc(r["tenant"]), key=True),
    Col("FLAVOR", lambda r: _esc(r["flavor"]), key=True),
    Col("JOBS", lambda r: str(r["jobs"]), key=True, right=True),
    Col("ACCEL-H", lambda r: _num(r["accelerator_hours"]), key=True, right=True),
    Col("USD", lambda r: _num(r["cost_usd"]), key=True, right=True),
    Col("KWH", lambda r: _num(r["energy_kwh"]), key=True, right=True, wide=True),
    Col("KG CO2", lambda r: _num(r["carbon_kg"]), key=True, right=True, wide=True),
]


TOKEN_COLUMNS = [
    Col("TENANT", lambda r: _esc(r["tenant"]), key=True),
    Col("SERVICE", lambda r: _esc(r["service"]), key=True),
    Col("MODEL", lambda r: _esc(r["model"]), wide=True),
    Col("REQUESTS", lambda r: f"{r['requests']:,}", key=True, right=True),
    Col("PROMPT TOK", lambda r: f"{r['prompt_tokens']:,}", key=True, right=True),
    Col("COMPL TOK", lambda r: f"{r['completion_tokens']:,}", key=True, right=True),
    Col("USD", lambda r: _num(r["cost_usd"]), key=True, right=True),
    Col("ESTIMATED", lambda r: f"{r['estimated_requests']:,}", right=True, wide=True),
]


def token_total(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("requests", "prompt_tokens", "completion_tokens", "estimated_requests", "cost_usd")
    return {"tenant": "*", "service": "*", "model": "*",
            **{k: sum(r[k] for r in rows) for k in keys}}  # fmt: skip


def print_usage(
    doc: dict[str, Any], fmt: Output, when: Callable[[str | None], str], tokens: bool = False
) -> None:
    since = when(doc["since"]) if doc["since"] else "the start"
    if tokens:
        rows = doc.get("tokens", [])
        emit(fmt, TOKEN_COLUMNS, [*rows, token_total(rows)],
             f"tokens through the gateway since {since}", data=rows)  # fmt: skip
        return
    emit(fmt, USAGE_COLUMNS, [*doc["rows"], doc["total"]], f"usage since {since}", data=doc)
