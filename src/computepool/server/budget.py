"""Budgets that hold: a job reserves its most possible use when it is submitted.

A job's time limit (``max_hours``, or its tenant's ``default_max_hours``) bounds how long it
may hold its accelerators, so ``accelerators x max_hours`` bounds its accelerator-hours, and
that times the dearest price of a flavor it may run on bounds its cost. For a tenant with a
budget, a submission is refused (``BudgetExceeded``) when

    used (by jobs that are finished, or carry no reservation) + reserved (by its unfinished
    jobs) + this job's reservation  >  the budget

and otherwise stored with its reservation, in the same transaction, with the tenant's row
locked (PostgreSQL: ``SELECT ... FOR UPDATE``; SQLite: the transaction began with
``BEGIN IMMEDIATE``, the database's one write lock), so parallel submissions see each other.
A reservation needs no release: once a job is finished its ledger (what it really used)
counts instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import and_, func, not_, select, text
from sqlalchemy.orm import Session

from computepool.model.pool import Pool
from computepool.server.db import ACTIVE, AllocationRow, JobRow, LedgerRow, TenantRow
from computepool.server.ledger import meter
from computepool.server.schemas import JobSpec
from computepool.server.validation import Feasibility, job_class_of

SECONDS_PER_HOUR = 3600.0


class BudgetExceeded(Exception):
    """A submission the tenant's budget cannot hold (or that a budget needs a limit for)."""

    def __init__(self, status: int, field: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.field, self.reason = status, field, reason


@dataclass(frozen=True)
class Limits:
    """What a stored job carries: its time limit and reservation (None: none)."""

    time_limit_s: float | None = None
    reserved_accel_hours: float | None = None
    reserved_usd: float | None = None


@dataclass(frozen=True)
class Committed:
    used_hours: float
    used_usd: float
    reserved_hours: float
    reserved_usd: float


def dearest_price(spec: JobSpec, feas: Feasibility) -> float:
    """USD per accelerator-hour of the dearest flavor the job could run on."""
    ok, _ = feas.flavors(job_class_of(spec))
    prices = np.asarray(feas.pool.flavor_price)
    return float(prices[ok].max()) if ok.any() else float(prices.max(initial=0.0))


def begin_exclusive(s: Session) -> None:
    """SQLite: take the database's write lock now (must be the transaction's first statement),
    so the sums read next cannot change before this transaction commits."""
    if s.get_bind().dialect.name == "sqlite":
        s.execute(text("BEGIN IMMEDIATE"))


@dataclass(frozen=True)
class TenantLimits:
    id: int
    name: str
    budget_accel_hours: float | None
    budget_usd: float | None
    default_max_hours: float | None


def lock_tenants(s: Session, tenant_ids: Iterable[int]) -> dict[int, TenantLimits]:
    """The tenants' budgets and default limits, their rows locked until commit on
    PostgreSQL (in id order: no deadlocks)."""
    ids = sorted(set(tenant_ids))
    if not ids:
        return {}
    q = (
        select(
            TenantRow.id,
            TenantRow.name,
            TenantRow.budget_accel_hours,
            TenantRow.budget_usd,
            TenantRow.default_max_hours,
        )
        .where(TenantRow.id.in_(ids))
        .order_by(TenantRow.id)
    )
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    return {r[0]: TenantLimits(*r) for r in s.execute(q)}


def committed(s: Session, pool: Pool, tenant_id: int, now: float) -> Committed:
    """Used (jobs finished or without a reservation) and reserved (unfinished jobs that hold
    one) by a tenant, in accelerator-hours and USD."""
    reserved_job = and_(JobRow.status.in_(ACTIVE), JobRow.reserved_accel_hours.is_not(None))
    used_s, used_usd = s.execute(
        select(func.sum(LedgerRow.accel_seconds), func.sum(LedgerRow.cost_usd))
        .join(JobRow, LedgerRow.job_id == JobRow.id)
        .where(LedgerRow.tenant_id == tenant_id, not_(reserved_job))
    ).one()
    hours, usd = float(used_s or 0.0) / SECONDS_PER_HOUR, float(used_usd or 0.0)
    for a in s.scalars(
        select(AllocationRow)
        .join(JobRow, AllocationRow.job_id == JobRow.id)
        .where(
            JobRow.tenant_id == tenant_id,
            AllocationRow.ended_at.is_(None),
            JobRow.reserved_accel_hours.is_(None),
        )
    ):
        m = meter(pool, a.flavor, a.accelerators, now - a.started_at)
        hours += m.accel_seconds / SECONDS_PER_HOUR
        usd += m.cost_usd + (a.egress_usd or 0.0)
    res_h, res_usd = s.execute(
        select(func.sum(JobRow.reserved_accel_hours), func.sum(JobRow.reserved_usd)).where(
            JobRow.tenant_id == tenant_id, reserved_job
        )
    ).one()
    return Committed(hours, usd, float(res_h or 0.0), float(res_usd or 0.0))


def _refusal(what: str, budget: float, used: float, reserved: float, asked: float) -> str:
    return (
        f"budget {budget:g} {what}: used {used:.4g} + reserved {reserved:.4g} by unfinished "
        f"jobs + requested {asked:.4g} would exceed it"
    )


class Reserver:
    """Decides submissions of one transaction in order, each seeing the ones before it."""

    def __init__(self, s: Session, pool: Pool, tenants: dict[int, TenantLimits], now: float):
        self.s, self.pool, self.tenants, self.now = s, pool, tenants, now
        self._committed: dict[int, list[float]] = {}

    def limits(self, tenant_id: int, spec: JobSpec, price: float) -> Limits:
        """The job's limits and reservation, or ``BudgetExceeded``."""
        t = self.tenants[tenant_id]
        hours = spec.max_hours if spec.max_hours is not None else t.default_max_hours
        limit_s = None if hours is None else hours * SECONDS_PER_HOUR
        if t.budget_accel_hours is None and t.budget_usd is None:
            return Limits(limit_s)
        if hours is None:
            raise BudgetExceeded(
                422,
                "max_hours",
                f"tenant {t.name!r} has a budget: give max_hours (the job's time limit), or ask "
                "the admin for a default (cpool admin tenant add --default-max-hours)",
            )
        need_h = spec.accelerators * hours
        need_usd = need_h * price
        c = self._committed.get(tenant_id)
        if c is None:
            k = committed(self.s, self.pool, tenant_id, self.now)
            c = self._committed[tenant_id] = [
                k.used_hours, k.reserved_hours, k.used_usd, k.reserved_usd
            ]  # fmt: skip
        used_h, res_h, used_usd, res_usd = c
        eps = 1e-9
        if (
            t.budget_accel_hours is not None
            and used_h + res_h + need_h > t.budget_accel_hours + eps
        ):
            raise BudgetExceeded(
                403, "tenant", _refusal("accelerator-hours", t.budget_accel_hours, used_h, res_h,
                                        need_h),
            )  # fmt: skip
        if t.budget_usd is not None and used_usd + res_usd + need_usd > t.budget_usd + eps:
            raise BudgetExceeded(
                403, "tenant", _refusal("USD", t.budget_usd, used_usd, res_usd, need_usd)
            )
        c[1] += need_h
        c[3] += need_usd
        return Limits(limit_s, need_h, need_usd)
