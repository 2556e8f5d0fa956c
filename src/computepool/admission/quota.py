"""Tenant quotas in Kueue's sense, as a ``RoundGate``: nominal quota, borrowing, reclaim.

Per tenant and flavor (accelerators):

- ``nominal``: guaranteed. A tenant's job that fits in its unused nominal quota is admitted,
  and if other tenants of its cohort are *borrowing* that capacity, the newest of their
  running jobs are preempted until it fits (Kueue's ``reclaimWithinCohort``).
- ``borrowing_limit``: how far above ``nominal`` the tenant may go using capacity other
  members of its cohort lend and do not use (None: no limit but the cohort's).
- ``lending_limit``: how much of ``nominal`` the others may borrow (None: all of it).

A tenant with no quotas at all is not limited (only the pool's capacity limits it). A tenant
over its budget starts nothing new; its running jobs finish. Borrowed capacity is shared by
weighted fair queueing: waiting jobs are visited in order of (tenant's borrowed
accelerators + accelerators requested so far) / tenant weight.

The gate is a pure function of the round's ``PolicyInput`` and a ``QuotaTable``; it returns
an (n, F) matrix with at most one allowed flavor per row, so quota is charged where the job
runs (Kueue assigns one flavor at admission).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from computepool.model.pool import Flavor
from computepool.model.status import Status
from computepool.model.tenant import FlavorQuota, Tenant
from computepool.policies.base import PolicyInput


@dataclass(frozen=True)
class QuotaTable:
    """Quotas as arrays over (tenant, flavor), tenants in the workload's tenant order."""

    nominal: np.ndarray  # (T, F)
    borrow: np.ndarray  # (T, F) inf = no limit of its own
    lend: np.ndarray  # (T, F)
    cohort: np.ndarray  # (T,) int; a tenant without a cohort is alone in its own
    limited: np.ndarray  # (T,) bool; False: no quota configured, not gated
    weight: np.ndarray  # (T,)
    blocked: np.ndarray  # (T,) bool; over budget: nothing new starts


def over_budget(spent: Mapping[str, tuple[float, float]], tenants: Iterable[Tenant]) -> set[str]:
    """Names of the tenants whose spending, (accelerator-hours, USD) by name, has reached a
    budget they have."""
    out = set()
    for t in tenants:
        hours, usd = spent.get(t.name, (0.0, 0.0))
        if t.budget_accel_hours is not None and hours >= t.budget_accel_hours:
            out.add(t.name)
        if t.budget_usd is not None and usd >= t.budget_usd:
            out.add(t.name)
    return out


def quota_for(quotas: Mapping[str, FlavorQuota], flavor: Flavor) -> FlavorQuota:
    """The quota entry that applies to ``flavor``: ``region/accel``, ``accel``, ``region/*``, ``*``."""
    for key in (flavor.name, flavor.accelerator, f"{flavor.region}/*", "*"):
        if key in quotas:
            return quotas[key]
    return FlavorQuota()


def quota_table(
    tenant_names: Sequence[str],
    tenants: Mapping[str, Tenant],
    flavors: Sequence[Flavor],
    over_budget: Collection[str] = (),
) -> QuotaTable:
    T, F = len(tenant_names), len(flavors)
    nominal, borrow, lend = np.zeros((T, F)), np.full((T, F), math.inf), np.zeros((T, F))
    limited, weight = np.zeros(T, dtype=bool), np.ones(T)
    cohort_ix: dict[str, int] = {}
    cohort = np.zeros(T, dtype=np.int64)
    for i, name in enumerate(tenant_names):
        t = tenants.get(name)
        key = f"\0{name}" if t is None or not t.cohort else t.cohort
        cohort[i] = cohort_ix.setdefault(key, len(cohort_ix))
        if t is None:
            continue
        weight[i] = t.weight
        limited[i] = bool(t.quotas)
        for k, f in enumerate(flavors):
            q = quota_for(t.quotas, f)
            nominal[i, k] = q.nominal
            borrow[i, k] = math.inf if q.borrowing_limit is None else q.borrowing_limit
            lend[i, k] = q.nominal if q.lending_limit is None else min(q.lending_limit, q.nominal)
    blocked = np.array([n in over_budget for n in tenant_names], dtype=bool)
    return QuotaTable(nominal, borrow, lend, cohort, limited, weight, blocked)


class _Books:
    """Usage per (tenant, flavor) and shared (lent) usage per (cohort, flavor), as lists."""

    def __init__(self, table: QuotaTable, usage: np.ndarray) -> None:
        self.nominal = table.nominal.tolist()
        self.cap = (table.nominal + table.borrow).tolist()
        self.private = (table.nominal - table.lend).tolist()
        self.cohort = table.cohort.tolist()
        C = int(table.cohort.max()) + 1 if len(table.cohort) else 0
        F = table.nominal.shape[1]
        shared_cap = np.zeros((C, F))
        np.add.at(shared_cap, table.cohort, table.lend)
        shared = np.zeros((C, F))
        np.add.at(shared, table.cohort, np.maximum(usage - (table.nominal - table.lend), 0.0))
        self.shared_cap, self.shared = shared_cap.tolist(), shared.tolist()
        self.used = usage.tolist()

    def shared_delta(self, t: int, f: int, s: float) -> float:
        u, p = self.used[t][f], self.private[t][f]
        return max(u + s - p, 0.0) - max(u - p, 0.0)

    def cohort_room(self, t: int, f: int, s: float) -> bool:
        c = self.cohort[t]
        return self.shared[c][f] + self.shared_delta(t, f, s) <= self.shared_cap[c][f] + 1e-9

    def charge(self, t: int, f: int, s: float) -> None:
        self.shared[self.cohort[t]][f] += self.shared_delta(t, f, s)
        self.used[t][f] += s

    def headroom(self, t: int, limit: list[list[float]], lent: bool) -> float:
        """An upper bound on what ``t`` could still get on any flavor under its own ``limit``
        (nominal, or nominal + borrowing limit) and, if ``lent``, what its cohort has left
        (not for nominal quota: reclaim can free that)."""
        c, best = self.cohort[t], 0.0
        for f, (lim, u) in enumerate(zip(limit[t], self.used[t], strict=True)):
            room = lim - u
            if lent:
                own = max(self.private[t][f] - u, 0.0)
                room = min(room, own + self.shared_cap[c][f] - self.shared[c][f])
            best = max(best, room)
        return best

    def borrowing(self, t: int, f: int) -> bool:
        return self.used[t][f] > self.nominal[t][f] + 1e-9


def _preferences(inp: PolicyInput) -> dict[tuple[int, int], list[int]]:
    """Feasible flavors per (class, mask), fastest first."""
    out: dict[tuple[int, int], list[int]] = {}
    for c, m in set(zip(inp.job_class.tolist(), inp.job_mask_index.tolist(), strict=True)):
        rates = inp.class_throughput[c] * inp.feasible_masks[m]
        ok = np.nonzero(rates > 0)[0]
        out[(c, m)] = ok[np.argsort(-rates[ok], kind="stable")].tolist()
    return out


def gate_rows(inp: PolicyInput, table: QuotaTable) -> np.ndarray:
    """(n, F) bool: the one flavor each row may use this round (none: it waits or is preempted)."""
    n, F = inp.n, inp.num_flavors
    allowed = np.zeros((n, F), dtype=bool)
    if n == 0:
        return allowed
    tenant = inp.tenant.astype(np.int64)
    limited = table.limited[tenant]
    running = inp.running
    # Tenants without quotas: any flavor, unless over budget for new starts.
    free_rows = ~limited & ((running >= 0) | ~table.blocked[tenant])
    allowed[free_rows] = True
    run_rows = np.nonzero(limited & (running >= 0))[0]
    allowed[run_rows, running[run_rows]] = True
    T = len(table.limited)
    usage = np.zeros((T, F))
    np.add.at(usage, (tenant[run_rows], running[run_rows]), inp.scale_factor[run_rows])
    books = _Books(table, usage)
    wait = np.nonzero(limited & (running < 0) & ~table.blocked[tenant])[0]
    if len(wait) == 0:
        return allowed
    wait = wait[np.argsort(inp.arrival[wait], kind="stable")]
    prefs = _preferences(inp)
    victims = _VictimQueue(inp, run_rows, tenant)
    sf = inp.scale_factor.tolist()
    cls, msk, ten = inp.job_class.tolist(), inp.job_mask_index.tolist(), tenant.tolist()
    deferred: list[int] = []
    # Per-tenant bounds skip rows that cannot fit anywhere in O(1) (long queues of a tenant
    # that is at its quota cost nothing); refreshed when the tenant is charged.
    room = {t: books.headroom(t, books.nominal, lent=False) for t in set(ten)}
    for r in wait.tolist():
        t, s = ten[r], float(sf[r])
        if room[t] + 1e-9 < s:
            deferred.append(r)
            continue
        for f in prefs[(cls[r], msk[r])]:
            if books.used[t][f] + s > books.nominal[t][f] + 1e-9:
                continue
            if books.cohort_room(t, f, s) or victims.reclaim(books, allowed, t, f, s):
                books.charge(t, f, s)
                room[t] = books.headroom(t, books.nominal, lent=False)
                allowed[r, f] = True
                break
        else:
            deferred.append(r)
    room = {t: books.headroom(t, books.cap, lent=True) for t in set(ten)}
    for r in _fair_order(deferred, inp, tenant, table, books):
        t, s = ten[r], float(sf[r])
        if room[t] + 1e-9 < s:
            continue
        for f in prefs[(cls[r], msk[r])]:
            if books.used[t][f] + s <= books.cap[t][f] + 1e-9 and books.cohort_room(t, f, s):
                books.charge(t, f, s)
                room[t] = books.headroom(t, books.cap, lent=True)
                allowed[r, f] = True
                break
    return allowed


def _fair_order(
    rows: list[int], inp: PolicyInput, tenant: np.ndarray, table: QuotaTable, books: _Books
) -> list[int]:
    """Waiting rows in weighted-fair order of the accelerators their tenant would borrow."""
    if not rows:
        return rows
    r = np.asarray(rows, dtype=np.int64)
    t = tenant[r]
    borrowed = np.maximum(np.asarray(books.used) - table.nominal, 0.0).sum(axis=1)
    order = np.lexsort((inp.arrival[r], t))
    r, t = r[order], t[order]
    sf = inp.scale_factor[r].astype(float)
    csum = np.cumsum(sf)
    start = np.searchsorted(t, t, side="left")
    before = np.where(start > 0, csum[start - 1], 0.0)
    key = (borrowed[t] + csum - before) / np.maximum(table.weight[t], 1e-9)
    return r[np.lexsort((inp.arrival[r], key))].tolist()


class _VictimQueue:
    """Running rows that may be preempted to give a tenant back its nominal quota."""

    def __init__(self, inp: PolicyInput, run_rows: np.ndarray, tenant: np.ndarray) -> None:
        # Least attained service first: the job that started last loses the least work.
        order = run_rows[np.argsort(inp.attained[run_rows], kind="stable")]
        self.rows = order.tolist()
        self.flavor = inp.running.tolist()
        self.tenant = tenant.tolist()
        self.sf = inp.scale_factor.tolist()

    def reclaim(self, books: _Books, allowed: np.ndarray, t: int, f: int, s: float) -> bool:
        """Preempt borrowers of ``f`` in ``t``'s cohort until ``s`` fits; False if it cannot."""
        c = books.cohort[t]
        picked: list[int] = []
        for v in self.rows:
            vt = self.tenant[v]
            if self.flavor[v] != f or vt == t or books.cohort[vt] != c or not allowed[v, f]:
                continue
            if not books.borrowing(vt, f):
                continue
            picked.append(v)
            books.charge(vt, f, -float(self.sf[v]))
            if books.cohort_room(t, f, s):
                for p in picked:
                    allowed[p, f] = False
                return True
        for v in picked:  # not enough to reclaim: undo
            books.charge(self.tenant[v], f, float(self.sf[v]))
        return False


class QuotaGate:
    """The ``RoundGate`` of a pool with tenant quotas.

    Tenants are matched by name to the workload's tenant list (which grows in a live pool);
    ``update`` replaces the tenants' quotas and the set of tenants over budget.

    The table built from them is kept with the tenants it was built from and used only while
    they are still the gate's: a table whose building an ``update`` overtook (a live pool
    explains a waiting job on an API thread while its round runs) is never used, so a raised
    quota cannot be lost behind a table of the old ones.
    """

    def __init__(
        self,
        flavors: Sequence[Flavor],
        tenants: Mapping[str, Tenant] | None = None,
        over_budget: Collection[str] = (),
    ) -> None:
        self.flavors = tuple(flavors)
        #: (tenants, tenants over budget): replaced whole, never changed in place.
        self._state: tuple[dict[str, Tenant], frozenset[str]] = (
            dict(tenants or {}),
            frozenset(over_budget),
        )
        #: (the state it was built from, its tenant names in row order, the table).
        self._cache: tuple[tuple, tuple[str, ...], QuotaTable] | None = None

    def update(self, tenants: Mapping[str, Tenant], over_budget: Collection[str] = ()) -> None:
        self._state = (dict(tenants), frozenset(over_budget))

    def table_for(self, names: Sequence[str]) -> QuotaTable:
        """Rows for ``names`` (the workload's tenants) first, then idle configured tenants
        (they lend their quota to the cohort even with no job)."""
        return self._built(names)[2]

    def _built(self, names: Sequence[str]) -> tuple[tuple, tuple[str, ...], QuotaTable]:
        state, cache = self._state, self._cache  # one read each: each is replaced whole
        if cache is not None and cache[0] is state and tuple(names) == cache[1][: len(names)]:
            return cache
        tenants, over = state
        known = set(names)
        rows = (*names, *(t for t in tenants if t not in known))
        built = (state, rows, quota_table(rows, tenants, self.flavors, over))
        self._cache = built
        return built

    def eligible(self, inp: PolicyInput) -> np.ndarray:
        names = inp.extras["workload"].tenants
        return gate_rows(inp, self.table_for(names))

    def explain(self, inp: PolicyInput, row: int) -> Status:
        """Why the gate holds row ``row`` of ``inp`` back (a status naming the quota)."""
        from computepool.admission.quota_why import explain_row

        state, rows, table = self._built(inp.extras["workload"].tenants)
        cohorts = [getattr(state[0].get(n), "cohort", "") for n in rows]
        return explain_row(inp, table, row, self.flavors, rows, cohorts)
