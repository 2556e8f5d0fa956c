"""The residency check's state in the store: approvals, person counters, audit records.

- Approvals live in ``residency_approvals``; the check is loaded from it at start-up and after
  every change an admin makes (``POST``/``DELETE /v1/residency/approvals``), so approvals
  survive a restart and an expiry stops jobs from being started where they depended on it.
- Per-calendar-year person counters live in ``residency_exports`` (one row per dataset
  counted), written in the round's transaction from the audit records' ``exports``: a restart
  does not reset a threshold.
- The check's audit records (one per start, one per rejection) go to ``audit_log`` with
  their stored job id and tenant; a start that copied data also tells the store sink its GB,
  delay and egress, which go on the placement interval and into the ledger.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from computepool.admission.approvals import Approval, ApprovalBook, PersonCounters
from computepool.admission.residency import ResidencyCheck
from computepool.server.db import ApprovalRow, AuditRow, ExportRow

ACTOR = "check:residency"


def residency_check(checks: Iterable[object]) -> ResidencyCheck | None:
    """The server's residency check, if it runs one."""
    return next((c for c in checks if isinstance(c, ResidencyCheck)), None)


# ---- approvals -------------------------------------------------------------------------
def _opt(t: float) -> float | None:
    return t if math.isfinite(t) else None


def to_approval(row: ApprovalRow) -> Approval:
    expires = math.inf if row.expires is None else row.expires
    if row.revoked_at is not None:
        expires = min(expires, row.revoked_at)
    return Approval(
        id=row.id,
        kind=row.kind,
        handler=row.handler,
        origin=row.origin,
        data_class=row.data_class,
        to=tuple(row.to or ("*",)),
        datasets=tuple(row.datasets or ()),
        valid_from=-math.inf if row.valid_from is None else row.valid_from,
        expires=expires,
        note=row.note or "",
    )


def approval_rows(s: Session) -> list[ApprovalRow]:
    return list(s.scalars(select(ApprovalRow).order_by(ApprovalRow.created_at, ApprovalRow.id)))


def load_book(s: Session) -> ApprovalBook:
    return ApprovalBook(tuple(to_approval(r) for r in approval_rows(s)))


def add_approval(s: Session, a: Approval, actor: str) -> bool:
    """Store a new approval; False when its id is taken (revoked ones included)."""
    if s.get(ApprovalRow, a.id) is not None:
        return False
    s.add(
        ApprovalRow(
            id=a.id, kind=a.kind, handler=a.handler, origin=a.origin, data_class=a.data_class,
            to=list(a.to), datasets=list(a.datasets), valid_from=_opt(a.valid_from),
            expires=_opt(a.expires), note=a.note, created_at=time.time(), created_by=actor,
        )
    )  # fmt: skip
    s.add(
        AuditRow(
            at=time.time(), actor=actor, action="approval.add", target=a.id,
            detail={"kind": a.kind, "handler": a.handler, "origin": a.origin,
                    "data_class": a.data_class, "to": list(a.to), "datasets": list(a.datasets),
                    "valid_from": _opt(a.valid_from), "expires": _opt(a.expires)},
        )
    )  # fmt: skip
    return True


def revoke_approval(s: Session, approval_id: str, actor: str, at: float) -> ApprovalRow | None:
    """Revoke (from ``at`` on); the row stays for the audit. None when there is no such id."""
    row = s.get(ApprovalRow, approval_id)
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at, row.revoked_by = at, actor
        s.add(AuditRow(at=at, actor=actor, action="approval.revoke", target=approval_id, detail={}))
    return row


def reload_approvals(check: ResidencyCheck, sessions: sessionmaker) -> None:
    """Make the check's approvals the store's (at start-up and after each change)."""
    with sessions() as s:
        book = load_book(s)
    check.set_approvals(book, now=time.time())


# ---- person counters -------------------------------------------------------------------
def load_counters(s: Session) -> PersonCounters:
    c = PersonCounters()
    for r in s.scalars(select(ExportRow)):
        c.add((r.handler, r.origin, r.counter, int(r.year)), r.dataset, int(r.persons))
    return c


def restore(check: ResidencyCheck, sessions: sessionmaker) -> None:
    """Load approvals and person counters from the store into the check (at start-up)."""
    with sessions() as s:
        book, counters = load_book(s), load_counters(s)
    check.restore(book, counters)


# ---- audit records ---------------------------------------------------------------------
def iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat()


def write_records(
    s: Session,
    records: deque,
    job_ids: list[int],
    tenant_of: Mapping[int, str],
) -> dict[int, tuple[float, float, float]]:
    """Write the check's pending audit records (and the exports they counted) in ``s``'s
    transaction. Job numbers in the records are workload indices; they are written as stored
    job ids. Returns ``{workload index: (GB, delay s, egress USD)}`` of starts that moved data.
    """
    rows, exports = [], []
    transfers: dict[int, tuple[float, float, float]] = {}
    while records:
        rec = dict(records.popleft())
        job = str(rec.get("job", ""))
        k = int(job) if job.isdigit() and int(job) < len(job_ids) else None
        if k is not None:
            rec["job"] = str(job_ids[k])
            rec["tenant"] = tenant_of.get(k, rec.get("tenant", ""))
            if rec.get("outcome") == "allowed" and (rec.get("transfer_gb") or 0) > 0:
                transfers[k] = (rec["transfer_gb"], rec["delay_s"], rec["egress_usd"])
        rec["at"] = iso(float(rec.get("time", time.time())))
        for h, o, c, y, name, persons in rec.get("exports", ()):
            exports.append(
                {"handler": h, "origin": o, "counter": c, "year": int(y), "dataset": name,
                 "persons": int(persons), "at": rec["time"],
                 "job_id": int(rec["job"]) if k is not None else None}
            )  # fmt: skip
        rows.append(
            {
                "at": float(rec.get("time", time.time())),
                "actor": ACTOR,
                "action": ("residency." + str(rec.get("outcome", "decision")))[:64],
                "target": f"job{rec['job']}" if rec.get("job") != "" else "",
                "detail": json.loads(json.dumps(rec, default=str)),
            }
        )
    if rows:
        s.execute(insert(AuditRow), rows)
    if exports:
        s.execute(insert(ExportRow), exports)
    return transfers


def record_of(row: AuditRow) -> dict[str, Any]:
    """An audit record as the API shows it."""
    rec = dict(row.detail or {})
    rec.setdefault("at", iso(row.at))
    return rec
