"""Why the quota gate holds a job back: which tenant's quota, on which flavor, how much it
uses of its nominal quota and borrowing limit, and how much its cohort could still lend
(kube-scheduler's Status for Kueue's quotas)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from computepool.admission.quota import QuotaTable, _Books, _preferences
from computepool.model.pool import Flavor
from computepool.model.status import Status
from computepool.policies.base import PolicyInput


def _num(v: float) -> str:
    return "no limit" if math.isinf(v) else f"{v:g}"


def explain_row(
    inp: PolicyInput,
    table: QuotaTable,
    row: int,
    flavors: Sequence[Flavor],
    tenant_names: Sequence[str],
    cohorts: Sequence[str],
) -> Status:
    """Why row ``row`` of ``inp`` may hold no flavor under ``table`` (usage: the rows that
    run). ``cohorts``: each tenant's cohort name ('' none), in ``table`` order."""
    tenant = inp.tenant.astype(np.int64)
    t = int(tenant[row])
    name = tenant_names[t] if t < len(tenant_names) else str(t)
    if table.blocked[t]:
        return Status.unschedulable(
            f"tenant {name!r} has used up its budget: its running jobs finish, nothing new "
            "starts until the budget is raised",
            f"budget:{name}",
        )
    run = np.nonzero(inp.running >= 0)[0]
    usage = np.zeros(table.nominal.shape)
    np.add.at(usage, (tenant[run], inp.running[run]), inp.scale_factor[run])
    books = _Books(table, usage)
    need = float(inp.scale_factor[row])
    prefs = _preferences(inp).get((int(inp.job_class[row]), int(inp.job_mask_index[row])), [])
    if not prefs:
        return Status.unschedulable("no flavor it may use", f"quota:{name}")
    c = books.cohort[t]
    best = None
    for f in prefs:
        used, nominal = books.used[t][f], books.nominal[t][f]
        own = books.cap[t][f] - used
        lendable = books.shared_cap[c][f] - books.shared[c][f]
        room = min(own, max(books.private[t][f] - used, 0.0) + lendable)
        if best is None or room > best[0]:
            best = (room, f, used, nominal, books.cap[t][f] - nominal, lendable)
    assert best is not None
    _room, f, used, nominal, borrow, lendable = best
    cohort = cohorts[t] if t < len(cohorts) else ""
    text = (
        f"quota of tenant {name!r} on {flavors[f].name}: needs {need:g}, uses {used:g} of "
        f"nominal {nominal:g} (may borrow {_num(borrow) if cohort else 0})"
    )
    if cohort:
        text += f"; cohort {cohort!r} has {max(lendable, 0.0):g} unused to lend"
    return Status.unschedulable(text, f"quota:{name}")
