import numpy as np
import pytest

from computepool.model.job import Job
from computepool.policies import get_policy
from computepool.sim.run import SimConfig, simulate
from tests.builders import jobs_at, make_pool, rates_table, workload


@pytest.fixture
def pool():
    return make_pool({"A": (1, 4), "B": (1, 4)})


def test_single_job_runs_at_fastest_flavor_and_finishes_exactly(pool):
    tp = rates_table(pool, {"m": {"A": 2.0, "B": 1.0}})
    w = workload(jobs_at([0.0], steps=7200.0))
    res = simulate(pool, w, tp, get_policy("fifo"), SimConfig(round_seconds=60))
    # 7200 steps at 2 steps/s on A -> 3600 s, starting at t=0
    assert res.end[0] == pytest.approx(3600.0)
    assert res.summary()["jobs_completed"] == 1
    assert res.accel_seconds[0] == pytest.approx(3600.0)


def test_agnostic_fifo_ignores_speed(pool):
    tp = rates_table(pool, {"m": {"A": 2.0, "B": 1.0}})
    w = workload(jobs_at(np.zeros(8), steps=3600.0))
    aware = simulate(pool, w, tp, get_policy("fifo"), SimConfig(round_seconds=60))
    agn = simulate(pool, w, tp, get_policy("fifo-agnostic"), SimConfig(round_seconds=60))
    # 8 jobs fill both flavors either way; agnostic leaves the B jobs on B, aware FIFO (Gavel's
    # fifo_perf) moves them to A when the A jobs finish at 1800 s: 1800 + 1800 / 2 = 2700 s
    assert np.nanmax(aware.end) == pytest.approx(2700.0)
    assert np.nanmax(agn.end) == pytest.approx(3600.0)


def test_restart_penalty_delays_completion(pool):
    tp = rates_table(pool, {"m": {"A": 1.0, "B": 1.0}})
    w = workload(jobs_at([0.0], steps=600.0))
    res = simulate(
        pool, w, tp, get_policy("fifo"), SimConfig(round_seconds=60, restart_penalty_s=30)
    )
    assert res.end[0] == pytest.approx(630.0)


def test_capacity_never_exceeded_and_all_jobs_finish(pool):
    tp = rates_table(pool, {"m": {"A": 1.0, "B": 0.5}})
    rng = np.random.default_rng(0)
    jobs = [
        Job(
            id=str(i),
            job_type="m",
            total_steps=float(rng.integers(100, 5000)),
            arrival=float(i * 30),
            workers=int(rng.choice([1, 2, 4])),
        )
        for i in range(60)
    ]
    for name in ("fifo", "fifo-agnostic", "tiresias"):
        res = simulate(pool, workload(jobs), tp, get_policy(name), SimConfig(round_seconds=120))
        ser = res.series_arrays()
        dt = (ser["t1"] - ser["t0"])[:, None]
        busy_avg = np.divide(ser["busy"], dt, out=np.zeros_like(ser["busy"]), where=dt > 0)
        assert np.all(busy_avg <= res.capacity[None, :] + 1e-6), name
        assert res.summary()["jobs_completed"] == 60, name
        assert np.all(res.end >= res.arrival), name


def test_las_preempts_long_job_for_new_short_job():
    pool = make_pool({"A": (1, 1)})
    tp = rates_table(pool, {"m": {"A": 1.0}})
    jobs = [
        Job(id="long", job_type="m", total_steps=100 * 3600.0, arrival=0.0),
        Job(id="short", job_type="m", total_steps=600.0, arrival=2 * 3600.0),
    ]
    res = simulate(pool, workload(jobs), tp, get_policy("tiresias"), SimConfig(round_seconds=360))
    # the short job (no attained service) preempts the long one (already past 1 h threshold)
    assert res.end[1] - res.arrival[1] < 3600.0
    assert res.preemptions[0] >= 1
    fifo = simulate(pool, workload(jobs), tp, get_policy("fifo"), SimConfig(round_seconds=360))
    assert fifo.end[1] > 100 * 3600.0


def test_impossible_jobs_rejected_with_reason():
    pool = make_pool({"A": (2, 4)})
    tp = rates_table(pool, {"m": {"A": 1.0}})
    jobs = [
        Job(id="ok", job_type="m", total_steps=60.0),
        Job(id="huge", job_type="m", total_steps=60.0, workers=64),
        Job(id="ascend", job_type="m", total_steps=60.0, stacks=("cann",)),
    ]
    res = simulate(pool, workload(jobs), tp, get_policy("fifo"), SimConfig(round_seconds=60))
    assert set(res.rejected) == {1, 2}
    assert (
        "64 accelerators" in res.rejected[1].reason
        and "largest flavor has 8" in res.rejected[1].reason
    )
    assert "cann" in res.rejected[2].reason
    assert res.summary()["jobs_completed"] == 1


def test_window_stops_when_window_done():
    pool = make_pool({"A": (1, 4)})
    tp = rates_table(pool, {"m": {"A": 1.0}})
    w = workload(jobs_at(np.arange(100) * 600.0, steps=300.0))
    res = simulate(pool, w, tp, get_policy("fifo"), SimConfig(round_seconds=60, window=(10, 20)))
    s = res.summary()
    assert s["jobs_in_window"] == 10
    assert np.all(~np.isnan(res.end[10:20]))
    assert np.isnan(res.end[-1])  # stopped long before the last job


def test_deterministic():
    pool = make_pool({"A": (1, 4), "B": (2, 4)})
    tp = rates_table(pool, {"m": {"A": 1.0, "B": 3.0}, "n": {"A": 2.0, "B": 1.0}})
    rng = np.random.default_rng(1)
    jobs = [
        Job(
            id=str(i),
            job_type=str(rng.choice(["m", "n"])),
            total_steps=float(rng.integers(100, 9000)),
            arrival=float(i * 100),
        )
        for i in range(80)
    ]
    a = simulate(pool, workload(jobs), tp, get_policy("tiresias"))
    b = simulate(pool, workload(jobs), tp, get_policy("tiresias"))
    assert np.array_equal(a.end, b.end)


def test_utilization_timeline_spreads_long_intervals():
    pool = make_pool({"A": (1, 4)})
    tp = rates_table(pool, {"m": {"A": 1.0}})
    # four jobs run 10 h on all 4 accelerators; FIFO skips rounds, so intervals are long
    w = workload(jobs_at(np.zeros(4), steps=36000.0))
    res = simulate(pool, w, tp, get_policy("fifo"), SimConfig(round_seconds=360))
    t, util = res.utilization_timeline(bucket_s=3600.0)
    assert len(t) == 10
    assert np.allclose(util[:, 0], 1.0)
    per, overall = res.utilization()
    assert overall == pytest.approx(1.0)
