"""Fill a store with a realistic history: N jobs of 8 tenants over the last week, with their
events, placement intervals, ledger entries and residency decisions (bulk inserts).

Used by the dashboard tests and ``benchmarks/dashboard_render.py``. Finished jobs only, plus
a backlog of waiting jobs whose tenant has a zero quota (they never start, so a server on this
store launches no processes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import insert

from computepool.catalog.pools import load_pool
from computepool.server import store
from computepool.server.db import (
    AllocationRow,
    AuditRow,
    JobEventRow,
    JobRow,
    LedgerRow,
    TenantRow,
    sessions,
)
from computepool.server.ledger import meter
from computepool.server.runtime import open_store

TENANTS = ("nio", "xpeng", "li-auto", "byd", "geely", "saic", "bmw", "vw")
BACKLOG = "backlog"


@dataclass(frozen=True)
class Filled:
    admin: str
    tenant: str  #: a token of TENANTS[0]
    tenant_name: str
    jobs: int
    jobs_of_tenant: int


def fill(data_dir: Path, url: str, pool_name: str, jobs: int = 10_000, seed: int = 0) -> Filled:
    pool = load_pool(pool_name)
    flavors = [f.name for f in pool.flavors]
    rng = np.random.default_rng(seed)
    now = time.time()
    engine = open_store(data_dir, url)
    S = sessions(engine)
    with S() as s:
        ids = {}
        for i, name in enumerate((*TENANTS, BACKLOG)):
            quotas = {"*": {"nominal": 0.0}} if name == BACKLOG else {}
            if i % 2 == 0 and name != BACKLOG:
                quotas = {"*": {"nominal": 16.0, "borrowing_limit": 32.0}}
            row = TenantRow(
                name=name,
                weight=1.0 + (i % 3),
                cohort="" if name == BACKLOG else "automakers",
                quotas=quotas,
                budget_accel_hours=None,
                budget_usd=50_000.0 if i % 4 == 1 else None,
                created_at=now - 8 * 86400,
            )
            s.add(row)
            s.flush()
            ids[name] = row.id
        _, admin = store.create_token(s, "admin", None, "fill")
        first = s.get(TenantRow, ids[TENANTS[0]])
        _, tenant_tok = store.create_token(s, "tenant", first, "fill")
        s.commit()

        n_wait = max(jobs // 50, 1)
        n_done = jobs - n_wait
        tenant = rng.integers(0, len(TENANTS), n_done)
        submitted = np.sort(now - rng.uniform(600, 7 * 86400, n_done))
        wait = rng.exponential(600, n_done)
        run = rng.exponential(2 * 3600, n_done) + 30
        started = submitted + wait
        finished = np.minimum(started + run, now - 1)
        cap = pool.capacity / pool.capacity.sum()  # more jobs where there are more cards
        flavor = rng.choice(len(flavors), n_done, p=cap)
        per_worker = rng.choice([1, 2, 4, 8], n_done)
        outcome = rng.choice(
            ["succeeded", "failed", "cancelled", "rejected"], n_done, p=[0.86, 0.07, 0.05, 0.02]
        )
        job_rows, events, allocs, ledger, audit = [], [], [], [], []
        for k in range(n_done):
            jid = k + 1
            st = str(outcome[k])
            ran = st != "rejected"
            fl = flavors[flavor[k]]
            acc = int(per_worker[k])
            job_rows.append(
                _job(jid, ids[TENANTS[tenant[k]]], f"train-{jid}", st, acc, submitted[k],
                     started[k] if ran else None, finished[k] if ran else submitted[k] + 1,
                     fl if ran else None)
            )  # fmt: skip
            events.append(_ev(jid, submitted[k], "queued"))
            if not ran:
                events.append(_ev(jid, submitted[k] + 1, "rejected", "no legal flavor (CN-5)"))
                audit.append(_audit(jid, submitted[k] + 1, "rejected", "", ["CN-5"]))
                continue
            events += [
                _ev(jid, submitted[k] + 0.5, "admitted"),
                _ev(jid, started[k], "running", fl),
                _ev(jid, finished[k], st),
            ]
            allocs.append(
                {"id": jid, "job_id": jid, "attempt": 1, "flavor": fl, "accelerators": acc,
                 "workers": [[f"node-{jid % 97}", list(range(acc))]],
                 "started_at": float(started[k]), "ended_at": float(finished[k]), "end_reason": st}
            )  # fmt: skip
            m = meter(pool, fl, acc, float(finished[k] - started[k]))
            ledger.append(
                {"job_id": jid, "tenant_id": ids[TENANTS[tenant[k]]], "allocation_id": jid,
                 "flavor": fl, "start": float(started[k]), "end": float(finished[k]),
                 "accel_seconds": m.accel_seconds, "energy_kwh": m.energy_kwh,
                 "cost_usd": m.cost_usd, "carbon_kg": m.carbon_kg}
            )  # fmt: skip
            audit.append(_audit(jid, started[k], "allowed", fl, ["GEN-1/allow[0]"]))
        for k in range(n_wait):
            jid = n_done + k + 1
            t = now - rng.uniform(60, 3600)
            job_rows.append(
                _job(jid, ids[BACKLOG], f"backlog-{k}", "admitted", 8, t, None, None, None)
            )
            events += [_ev(jid, t, "queued"), _ev(jid, t + 0.5, "admitted")]
        for table, rows in (
            (JobRow, job_rows),
            (JobEventRow, events),
            (AllocationRow, allocs),
            (LedgerRow, ledger),
            (AuditRow, audit),
        ):
            for i in range(0, len(rows), 5000):
                s.execute(insert(table), rows[i : i + 5000])
        s.commit()
    engine.dispose()
    return Filled(admin, tenant_tok, TENANTS[0], jobs, int((tenant == 0).sum()))


def _job(jid, tenant_id, name, status, acc, submitted, started, finished, flavor) -> dict:
    return {
        "id": jid,
        "tenant_id": tenant_id,
        "name": name,
        "status": status,
        "spec": {"command": "python train.py", "workers": 1, "accelerators_per_worker": acc},
        "accelerators": acc,
        "idempotency_key": None,
        "request_hash": None,
        "submitted_at": float(submitted),
        "started_at": None if started is None else float(started),
        "finished_at": None if finished is None else float(finished),
        "flavor": flavor,
        "reason": "",
        "exit_code": 0 if status == "succeeded" else None,
        "attempts": 1 if started is not None else 0,
        "preemptions": 0,
        "cancel_requested": False,
    }


def _ev(jid: int, at: float, kind: str, detail: str = "") -> dict:
    return {"job_id": jid, "at": float(at), "kind": kind, "detail": detail}


def _audit(jid: int, at: float, outcome: str, flavor: str, decided: list[str]) -> dict:
    return {
        "at": float(at),
        "actor": "check:residency",
        "action": f"residency.{outcome}",
        "target": f"job{jid}",
        "detail": {
            "job": jid,
            "outcome": outcome,
            "flavor": flavor,
            "region": flavor.split("/", 1)[0],
            "rules_consulted": ["GEN-1", "CN-5"],
            "decided_by": decided,
            "approvals": [],
            "transfer_gb": 0.0,
            "reason": "" if outcome == "allowed" else "personal data collected in CN stays in CN",
        },
    }
