"""Gavel-fidelity of the round loop for time-shared (LP) policies."""

import numpy as np

from computepool.policies import get_policy
from computepool.scheduler.loop import Scheduler, SchedulerConfig
from computepool.sim.cluster import SimClock, SimulatedCluster, WorkloadSource
from tests.builders import jobs_at, make_pool, rates_table, workload


def _run(recompute_on_change: bool, on_round=None) -> Scheduler:
    pool = make_pool({"A": (1, 2), "B": (1, 2)})
    tp = rates_table(pool, {"m": {"A": 2.0, "B": 1.0}})
    w = workload(jobs_at([0, 100, 500, 900, 1300, 2500, 2600], steps=20000.0))
    s = Scheduler(
        pool,
        w,
        tp,
        get_policy("las"),
        SimulatedCluster(w, tp.class_matrix([c.key for c in w.classes], ["A", "B"])),
        SimClock(0.0),
        WorkloadSource(w),
        SchedulerConfig(round_seconds=360, recompute_on_change=recompute_on_change),
    )
    s.run(on_round=on_round)
    return s


def test_allocation_recomputed_only_at_resets_by_default():
    gavel = _run(False)
    eager = _run(True)
    assert gavel.series.policy_calls < eager.series.policy_calls
    assert gavel.history.state.tolist() == [1] * 7
    assert eager.history.state.tolist() == [1] * 7


def test_pool_never_idle_while_jobs_wait():
    seen = []

    def check(s: Scheduler) -> None:
        running = s.active.running
        waiting = int(np.count_nonzero(running < 0))
        seen.append(waiting)
        if waiting:
            assert np.count_nonzero(running >= 0) == 4

    _run(False, on_round=check)
    assert max(seen) > 0  # the check was exercised
