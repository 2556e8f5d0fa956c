import numpy as np
import pytest

from computepool.model.job import Job
from computepool.policies import greedy
from computepool.scheduler.loop import Scheduler
from computepool.sim.cluster import SimClock, WorkloadSource
from tests.builders import make_pool, rates_table, workload
from tests.fakes import RecordingCluster


def _input(n: int, running_frac: float = 0.3, seed: int = 0):
    pool = make_pool({"A": (8, 8), "B": (8, 8), "C": (4, 8)})
    tp = rates_table(pool, {"m": {"A": 3.0, "B": 2.0, "C": 1.0}})
    rng = np.random.default_rng(seed)
    jobs = [
        Job(
            id=str(i),
            job_type="m",
            total_steps=1e6,
            arrival=float(i),
            workers=int(rng.choice([1, 2, 4, 8])),
        )
        for i in range(n)
    ]
    w = workload(jobs)
    s = Scheduler(
        pool,
        w,
        tp,
        __import__("computepool.policies", fromlist=["x"]).get_policy("fifo"),
        RecordingCluster(),
        SimClock(float(n)),
        WorkloadSource(w),
    )
    s.active.add(np.arange(n))
    inp = s.policy_input(float(n))
    # mark some rows as running on a flavor with room, in order
    running = np.full(n, -1)
    free = pool.capacity.copy()
    for r in rng.permutation(n)[: int(n * running_frac)]:
        f = int(rng.integers(0, 3))
        if free[f] >= inp.scale_factor[r]:
            running[r] = f
            free[f] -= inp.scale_factor[r]
    object.__setattr__(inp, "running", running)
    return inp


@pytest.mark.parametrize("aware", [True, False])
def test_bulk_and_loop_agree_on_who_runs_and_respect_capacity(aware, monkeypatch):
    inp = _input(3000)
    order = np.arange(inp.n)
    bulk = greedy.greedy_assign(inp, order, aware)
    monkeypatch.setattr(greedy, "BULK_MIN_ROWS", 10**9)
    loop = greedy.greedy_assign(inp, order, aware)
    for alloc in (bulk, loop):
        used = np.bincount(alloc.flavor, weights=inp.scale_factor[alloc.rows], minlength=3)
        assert np.all(used <= inp.capacity)
        assert len(np.unique(alloc.rows)) == len(alloc.rows)
    # both fill the pool to within one gang per flavor
    used_bulk = inp.scale_factor[bulk.rows].sum()
    used_loop = inp.scale_factor[loop.rows].sum()
    assert abs(used_bulk - used_loop) <= 3 * 8
    # running rows that are admitted keep their flavor in the bulk path
    kept = inp.running[bulk.rows]
    moved = (kept >= 0) & (kept != bulk.flavor)
    assert moved.sum() <= 0.05 * len(bulk.rows)


def test_bulk_aware_prefers_fast_flavor():
    inp = _input(2000, running_frac=0.0)
    order = np.arange(inp.n)
    alloc = greedy.greedy_assign(inp, order, aware=True)
    first = alloc.flavor[:10]
    assert np.all(first == 0)  # flavor A is the fastest


def test_fifo_sticky_never_moves_running_jobs_but_fifo_does():
    from computepool.policies import get_policy

    inp = _input(40, running_frac=0.0)
    # job 0 runs on the slowest flavor C while the fastest A has room
    running = np.full(inp.n, -1)
    running[0] = 2
    object.__setattr__(inp, "running", running)
    sticky = get_policy("fifo-sticky").allocate(inp)
    moving = get_policy("fifo").allocate(inp)
    assert dict(zip(sticky.rows.tolist(), sticky.flavor.tolist(), strict=True))[0] == 2
    assert dict(zip(moving.rows.tolist(), moving.flavor.tolist(), strict=True))[0] == 0
    # sticky still puts new jobs on the fastest flavor first
    first_new = sticky.flavor[sticky.rows != 0][0]
    assert first_new == 0
