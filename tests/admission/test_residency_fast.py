"""The fast paths agree with the full verdicts: masks of many profiles as arrays
(``flavor_masks``), a profile's mask and Status without building verdicts (``flavor_mask``),
and the Scheduler's incremental mask rows (recomputed only where a change can reach them).

Random scenarios run in the simulator; after each round every data profile is compared with
what ``judge_profile`` (``region_verdicts``) says in the same state.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given

from computepool.admission.approvals import Approval, ApprovalBook, TimeBase
from computepool.admission.feasibility import class_feasibility
from computepool.admission.residency import ResidencyCheck, residency_status
from computepool.model.job import Dataset, Job
from computepool.model.workload import Workload
from computepool.policies import get_policy
from computepool.scheduler.loop import Scheduler, SchedulerConfig
from computepool.sim.cluster import SimClock, SimulatedCluster, WorkloadSource
from tests.admission.regions import REGIONS, region_pool
from tests.admission.test_residency_properties import (
    EPOCH,
    HORIZON,
    PROPERTY,
    RULEBOOK,
    scenarios,
    threshold_scenarios,
)
from tests.builders import rates_table

COMPARED = {"profiles": 0, "rounds": 0, "recomputed": 0}


def full_mask(check: ResidencyCheck, ds: tuple[Dataset, ...], pool) -> np.ndarray:
    v = check.region_verdicts(ds, pool)
    return np.array([v[f.region].allowed for f in pool.flavors], dtype=bool)


def compare_all(check: ResidencyCheck, profiles, pool) -> None:
    fast = check.flavor_masks(profiles, pool)
    for p, ds in enumerate(profiles):
        want = full_mask(check, ds, pool) if ds else np.ones(len(pool.flavors), dtype=bool)
        assert (fast[p] == want).all(), (ds, fast[p], want)
        mask, status = check.flavor_mask(ds, pool)
        assert (mask == want).all(), (ds, mask, want)
        if ds:
            assert status == residency_status(ds, check.region_verdicts(ds, pool)), ds
        COMPARED["profiles"] += 1


def run_and_compare(case) -> None:
    pool, jobs, appr, strict, ciio, policy = case
    rb = RULEBOOK.with_settings(automotive_strict=strict, ciio_handlers=ciio)
    check = ResidencyCheck(
        rb, pool=pool, approvals=ApprovalBook(tuple(appr)), timebase=TimeBase(EPOCH),
        regions=REGIONS,
    )  # fmt: skip
    w = Workload.from_jobs(jobs)
    tp = rates_table(pool, {"m": {"A": 1.0, "B": 0.5}})
    feas = class_feasibility(w.classes, pool, tp)
    cluster = SimulatedCluster(w, feas.rates, 0.0, float(w.arrival[0]))
    sched = Scheduler(
        pool, w, tp, get_policy(policy), cluster, SimClock(float(w.arrival[0])),
        WorkloadSource(w), SchedulerConfig(round_seconds=1800.0), checks=(check,),
        feasibility=feas,
    )  # fmt: skip

    def on_round(s: Scheduler) -> None:
        now = s.clock.now()
        # what the next round would see: starts of this one may have moved counters
        s._sync_checks(now)
        masks = s._profile_masks()
        COMPARED["recomputed"] += int(np.count_nonzero(~s._stale))
        for p in np.unique(w.data_profile[s.active.job]):
            ds = w.profiles[int(p)]
            want = full_mask(check, ds, pool) if ds else np.ones(len(pool.flavors), bool)
            assert (masks[p] == want).all(), (now, ds, masks[p], want)
        compare_all(check, w.profiles, pool)
        COMPARED["rounds"] += 1

    sched.run(until=HORIZON * 3, on_round=on_round)


@PROPERTY
@given(scenarios())
def test_fast_masks_statuses_and_incremental_rows_match_full_verdicts(case):
    run_and_compare(case)


@PROPERTY
@given(threshold_scenarios())
def test_fast_paths_match_under_person_thresholds(case):
    run_and_compare(case)


def test_the_comparison_ran():
    if COMPARED["rounds"] == 0:  # run alone
        test_fast_masks_statuses_and_incremental_rows_match_full_verdicts()
        test_fast_paths_match_under_person_thresholds()
    assert COMPARED["rounds"] >= 500 and COMPARED["profiles"] >= 10_000, COMPARED


def test_an_approval_change_recomputes_only_the_profiles_it_can_reach():
    pool = region_pool(
        {"cn-hangzhou": {"A": (2, 8)}, "ap-singapore": {"A": (2, 8)}, "eu-frankfurt": {"A": (2, 8)}}
    )
    a = Dataset("a", "cn.pi", "CN", persons=50_000, handler="h1")
    b = Dataset("b", "cn.pi", "CN", persons=50_000, handler="h2")
    c = Dataset("c", "eu.personal", "EU", handler="h1")
    jobs = [
        Job(str(i), job_type="m", total_steps=1e9, workers=16, datasets=(d,))
        for i, d in enumerate((a, b, c))
    ]
    w = Workload.from_jobs(jobs)
    tp = rates_table(pool, {"m": {"A": 1.0}})
    check = ResidencyCheck(pool=pool, approvals=ApprovalBook(), regions=REGIONS)
    rates = class_feasibility(w.classes, pool, tp).rates
    sched = Scheduler(
        pool, w, tp, get_policy("fifo"), SimulatedCluster(w, rates), SimClock(0.0),
        WorkloadSource(w), checks=(check,),
    )  # fmt: skip
    sched.step()
    assert len(sched.active) == 3 and not sched._stale[w.data_profile].any()
    sg = [f.region == "ap-singapore" for f in pool.flavors]
    pa, pb, pc = (int(w.data_profile[i]) for i in range(3))
    assert not sched._masks[pa, sg].any()
    for k in ("consent", "pipia"):
        check.add_approval(Approval(f"{k}-h1", k, handler="h1", origin="CN"))
    seen = []
    narrow = check.affected_profiles

    def spy(profiles):
        out = narrow(profiles)
        seen.append([p for p, hit in zip(profiles, out, strict=True) if hit])
        return out

    check.affected_profiles = spy  # type: ignore[method-assign]
    sched._sync_checks(1.0)
    assert seen == [[(a,)]]
    masks = sched._profile_masks()
    assert masks[pa, sg].all() and not masks[pb, sg].any() and not masks[pc, sg].any()
