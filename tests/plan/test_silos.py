"""Pool vs silos: peak demand by hand, and a two-tenant case whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from computepool.catalog.accelerators import load_accelerators
from computepool.catalog.regions import load_regions
from computepool.model.job import Job
from computepool.model.throughput import Throughputs
from computepool.model.workload import Workload
from computepool.plan.silos import Economics, StudyInput, peak_demand, run_study, subset


def test_peak_demand_by_hand():
    arrival = np.array([0.0, 5.0, 20.0])
    duration = np.array([10.0, 10.0, 1.0])
    sf = np.array([2, 3, 4])
    assert peak_demand(arrival, duration, sf) == 5  # 2 + 3 overlap in [5, 10)
    # time-weighted: level 2 for 5 s, 5 for 5 s, 3 for 5 s, 0 for 5 s, 4 for 1 s (21 s)
    assert peak_demand(arrival, duration, sf, q=0.5) == 3
    assert peak_demand(np.zeros(0), np.zeros(0), np.zeros(0)) == 0


def test_subset_keeps_columns():
    w = Workload.from_jobs([Job(id=str(i), tenant="ab"[i % 2], arrival=i) for i in range(6)])
    s = subset(w, w.tenant == 1)
    assert len(s) == 3 and s.ids == ["1", "3", "5"] and s.tenants == w.tenants


def _two_tenants() -> StudyInput:
    """A: four 8-card jobs at t=0; B: four 8-card jobs at t=2h; each runs 1 h on an H100.

    Each silo needs its peak of 32 cards (64 in all); pooled, the peaks never overlap, so 32
    cards give the same JCT. Work = 8 x 8 x 1 h = 64 accelerator-hours in a 4 h window.
    """
    jobs = [
        Job(id=f"{t}{i}", tenant=t, workers=8, total_steps=8 * 3600.0, arrival=at)
        for t, at in (("A", 0.0), ("B", 7200.0))
        for i in range(4)
    ]
    accels = load_accelerators()
    h100 = accels["H100"]
    return StudyInput(
        workload=Workload.from_jobs(jobs, name="two"),
        window=(0.0, 4 * 3600.0),
        accelerator=h100,
        region=load_regions()["cn-ulanqab"],
        per_node=8,
        economics=Economics(50000.0, 4.0, 1.0, 0.0, 0.1),
        throughputs=Throughputs(accels, {}),
        round_seconds=60.0,
    )


def test_two_tenants_pool_halves_the_cards():
    r = run_study(_two_tenants())
    assert r.silos.cards == 64 and r.pool.cards == 64
    assert r.smaller is not None and r.smaller.cards == 32
    assert r.smaller.avg_jct_hours <= r.jct_target_hours * (1 + 1e-9)
    assert r.silos.utilisation == pytest.approx(0.25, rel=0.02)
    assert r.smaller.utilisation == pytest.approx(0.5, rel=0.02)
    assert r.smaller.cost_per_useful_hour < r.silos.cost_per_useful_hour
    assert [t.cards for t in r.tenants] == [32, 32]
    # below 32 cards A's four jobs queue: the bisection tried such a pool and found it slower
    assert any(c < 32 and j > r.jct_target_hours for c, j in r.search)


def _spiky() -> StudyInput:
    """Tenant A: one 8-card job for 10 h plus three 8-card jobs for 6 min (a 32-card spike);
    tenant B: one 8-card job for 10 h. A's 95th-percentile demand is 8 cards, its peak 32."""
    jobs = [Job(id="A0", tenant="A", workers=8, total_steps=8 * 36000.0, arrival=0.0)]
    jobs += [
        Job(id=f"A{i}", tenant="A", workers=8, total_steps=8 * 360.0, arrival=3600.0)
        for i in range(1, 4)
    ]
    jobs.append(Job(id="B0", tenant="B", workers=8, total_steps=8 * 36000.0, arrival=0.0))
    base = _two_tenants()
    import dataclasses

    return dataclasses.replace(
        base, workload=Workload.from_jobs(jobs, name="spiky"), window=(0.0, 11 * 3600.0)
    )


def test_silos_are_sized_at_the_stated_quantile_not_the_peak():
    import dataclasses

    inp = _spiky()
    at95 = run_study(inp)
    a = next(t for t in at95.tenants if t.name == "A")
    assert a.cards == 8 and a.true_peak == 32
    assert "95%" in at95.sizing_rule
    peak = run_study(dataclasses.replace(inp, peak_quantile=1.0))
    assert next(t for t in peak.tenants if t.name == "A").cards == 32
    assert peak.silos.cards > at95.silos.cards
    # A's spike queues in an 8-card silo: its JCT there is above its JCT in the pool
    assert a.avg_jct_hours > a.pool_jct_hours
    bought = run_study(dataclasses.replace(inp, silo_cards={"A": 16}))
    assert next(t for t in bought.tenants if t.name == "A").cards == 16
    assert "bought" in bought.sizing_rule


def test_per_tenant_outcomes_in_pool_and_smaller_pool():
    r = run_study(_two_tenants())
    for t in r.tenants:
        assert t.pool_jct_hours == pytest.approx(t.avg_jct_hours, rel=0.05)
        assert t.smaller_jct_hours == pytest.approx(t.avg_jct_hours, rel=0.05)
        assert t.smaller_cost_share_usd == pytest.approx(r.smaller.cost_usd / 2, rel=1e-6)


def test_openb_tenant_rules(tmp_path):
    from computepool.catalog.throughputs import load_throughputs
    from computepool.plan.silos_study import openb_with_tenants, pod_tenant

    assert pod_tenant("LS", 1, 500, "qos") == "LS"
    assert pod_tenant("LS", 1, 500, "qos_shape") == "LS-shared"
    assert pod_tenant("BE", 1, 1000, "qos_shape") == "BE-whole"
    assert pod_tenant("BE", 4, 1000, "qos_shape") == "BE-multi"
    csv = tmp_path / "openb_pod_list_t.csv"
    csv.write_text(
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
        "deletion_time,scheduled_time\n"
        "p0,1000,1024,1,500,,LS,Running,0,3600,0\n"
        "p1,1000,1024,2,1000,,BE,Running,10,7200,10\n"
        "p2,1000,1024,0,0,,BE,Running,10,7200,10\n"
        "p3,1000,1024,1,1000,,BE,Running,20,7200,20\n"
    )
    w = openb_with_tenants(csv, load_throughputs("gavel"), "H100", "qos_shape")
    assert len(w) == 3  # the CPU-only pod is left out
    assert sorted(w.tenants) == ["BE-multi", "BE-whole", "LS-shared"]
    assert [w.tenants[k] for k in w.tenant] == ["LS-shared", "BE-multi", "BE-whole"]
