"""Kueue-style quotas through the real Scheduler: nominal, borrowing, reclaim, fair share, budget."""

import numpy as np
import pytest

from computepool.admission.quota import QuotaGate
from computepool.model.job import Job
from computepool.model.tenant import FlavorQuota, Tenant
from computepool.policies import get_policy
from computepool.scheduler.loop import Scheduler, SchedulerConfig
from computepool.sim.cluster import SimClock, WorkloadSource
from tests.builders import make_pool, rates_table, workload
from tests.fakes import RecordingCluster


def _run(jobs, tenants, over_budget=(), spec=None):
    pool = make_pool(spec or {"A": (2, 4)})
    tp = rates_table(pool, {"m": {a: 1.0 for a in (spec or {"A": 0})}})
    w = workload(jobs)
    gate = QuotaGate(pool.flavors, tenants, over_budget)
    cluster = RecordingCluster()
    s = Scheduler(
        pool,
        w,
        tp,
        get_policy("fifo"),
        cluster,
        SimClock(0.0),
        WorkloadSource(w),
        SchedulerConfig(round_seconds=60),
        gate=gate,
    )
    return s, cluster, gate


def _jobs(tenant, n, at=0.0, workers=1, start=0):
    return [
        Job(
            id=f"{tenant}{start + i}",
            tenant=tenant,
            job_type="m",
            total_steps=1e9,
            arrival=at - 1.0 + i * 1e-3,
            workers=workers,
        )
        for i in range(n)
    ]


def _running_by_tenant(s):
    w = s.workload
    run = s.active.running >= 0
    names = [w.tenants[t] for t in w.tenant[s.active.job[run]]]
    return {t: names.count(t) for t in sorted(set(names))}


def cohort(a_borrow=None, b_borrow=None, wa=1.0, wb=1.0):
    return {
        "a": Tenant("a", wa, "c", {"*": FlavorQuota(4, a_borrow)}),
        "b": Tenant("b", wb, "c", {"*": FlavorQuota(4, b_borrow)}),
    }


def test_idle_quota_is_borrowed_within_the_cohort():
    s, _, _ = _run(_jobs("a", 10), cohort())
    s.step()
    assert _running_by_tenant(s) == {"a": 8}


def test_borrowing_limit_caps_usage_above_nominal():
    s, _, _ = _run(_jobs("a", 10), cohort(a_borrow=2))
    s.step()
    assert _running_by_tenant(s) == {"a": 6}


def test_tenant_without_cohort_stays_within_nominal():
    tenants = {"a": Tenant("a", quotas={"A": FlavorQuota(3)})}
    s, _, _ = _run(_jobs("a", 10), tenants)
    s.step()
    assert _running_by_tenant(s) == {"a": 3}


def test_owner_reclaims_borrowed_capacity_by_preemption():
    s, cluster, _ = _run(_jobs("a", 8) + _jobs("b", 2, at=60.0), cohort())
    s.step()
    assert _running_by_tenant(s) == {"a": 8}
    s.clock.sleep_until(60.0)
    s.step()
    assert _running_by_tenant(s) == {"a": 6, "b": 2}
    plan = cluster.plans[-1]
    assert len(plan.stop) == 2 and len(plan.start) == 2
    # the preempted jobs wait; nothing thrashes in the next rounds
    for t in (120.0, 180.0):
        s.clock.sleep_until(t)
        s._decide(t, changed=False)
    assert _running_by_tenant(s) == {"a": 6, "b": 2}
    assert len(cluster.plans) == 2


def test_owner_within_nominal_does_not_preempt_non_borrowers():
    s, cluster, _ = _run(_jobs("a", 4) + _jobs("b", 6, at=60.0), cohort())
    s.step()
    s.clock.sleep_until(60.0)
    s.step()
    # b has 4 nominal; a is not borrowing, so b cannot take more than its own 4
    assert _running_by_tenant(s) == {"a": 4, "b": 4}
    assert len(cluster.plans[-1].stop) == 0


def test_borrowed_capacity_is_shared_by_weight():
    tenants = {
        "a": Tenant("a", 3.0, "c", {"*": FlavorQuota(0)}),
        "b": Tenant("b", 1.0, "c", {"*": FlavorQuota(0)}),
        "owner": Tenant("owner", 1.0, "c", {"*": FlavorQuota(8)}),
    }
    s, _, _ = _run(_jobs("b", 8) + _jobs("a", 8, at=0.5), tenants)
    s.step()
    assert _running_by_tenant(s) == {"a": 6, "b": 2}


def test_tenant_over_budget_starts_nothing_new():
    s, _, gate = _run(_jobs("a", 2) + _jobs("b", 2), cohort(), over_budget={"a"})
    s.step()
    assert _running_by_tenant(s) == {"b": 2}
    gate.update(cohort())
    s.clock.sleep_until(60.0)
    s._decide(60.0, changed=False)
    assert _running_by_tenant(s) == {"a": 2, "b": 2}


def test_tenant_without_quotas_is_not_gated():
    s, _, _ = _run(_jobs("free", 8), {"a": Tenant("a", quotas={"*": FlavorQuota(1)})})
    s.step()
    assert _running_by_tenant(s) == {"free": 8}


@pytest.mark.parametrize("seed", range(5))
def test_usage_never_exceeds_nominal_plus_borrowing_limit(seed):
    rng = np.random.default_rng(seed)
    jobs = []
    for t in ("a", "b"):
        for i in range(20):
            jobs.append(
                Job(
                    id=f"{t}{i}",
                    tenant=t,
                    job_type="m",
                    total_steps=1e9,
                    arrival=float(rng.uniform(0, 300)),
                    workers=int(rng.choice([1, 2])),
                )
            )
    s, _, _ = _run(jobs, cohort(a_borrow=1, b_borrow=2))
    limits = {"a": 5, "b": 6}
    for t in np.arange(0.0, 360.0, 60.0):
        s.clock.sleep_until(float(t))
        s.step()
        run = s.active.running >= 0
        jobs_run = s.active.job[run]
        sf = s.workload.scale_factor[jobs_run]
        for name, cap in limits.items():
            k = s.workload.tenants.index(name) if name in s.workload.tenants else -1
            used = int(sf[s.workload.tenant[jobs_run] == k].sum())
            assert used <= cap
        assert int(sf.sum()) <= 8
