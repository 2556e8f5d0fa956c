import numpy as np
import pytest

from computepool.model.job import Job
from computepool.model.throughput import DEFAULT_UNCONSOLIDATED_FACTOR
from computepool.placement.placer import PoolPlacer, split_workers
from computepool.policies import get_policy
from computepool.sim.run import SimConfig, simulate
from tests.builders import make_pool, rates_table, workload


def test_split_workers_into_whole_nodes():
    assert [w.num_gpu for w in split_workers(3, 8)] == [3]
    assert [w.num_gpu for w in split_workers(20, 8)] == [8, 8, 4]


def test_placer_binds_gangs_whole_and_releases_them():
    pool = make_pool({"A": (4, 4)})
    tp = rates_table(pool, {"m": {"A": 1.0}}, sfs=(1, 2, 4, 8, 16))
    w = workload([Job(id=str(i), job_type="m", workers=k) for i, k in enumerate([8, 4, 8])])
    p = PoolPlacer(pool, w, tp, "bestfit")
    placements, ok = p.place(np.array([0, 1, 2]), np.array([0, 0, 0]), 0.0)
    assert ok.tolist() == [True, True, False]  # 8 + 4 of 16; the last 8 does not fit whole
    assert p.state.used_gpu_milli() == 12_000
    assert sum(len(d) for _, d in placements[0].workers) == 8
    p.release(np.array([0]))
    assert p.state.used_gpu_milli() == 4_000


def test_a_spread_gang_runs_at_the_unconsolidated_rate():
    from computepool.model.pool import Node, Pool

    base = make_pool({"A": (2, 4)})
    nodes = (Node("a0", "r1", "A", 4, island="x"), Node("a1", "r1", "A", 4, island="y"))
    pool = Pool("split", base.accelerators, base.regions, nodes)
    tp = rates_table(pool, {"m": {"A": 1.0}})
    w = workload([Job(id="0", job_type="m", workers=8)])
    p = PoolPlacer(pool, w, tp, "fgd")
    placements, ok = p.place(np.array([0]), np.array([0]), 0.0)
    assert ok.all() and not placements[0].consolidated
    assert placements[0].rate_factor == pytest.approx(DEFAULT_UNCONSOLIDATED_FACTOR)


def test_simulate_with_placement_reports_fragmentation_over_time():
    pool = make_pool({"A": (3, 4)})
    tp = rates_table(pool, {"m": {"A": 1.0}})
    rng = np.random.default_rng(0)
    jobs = [
        Job(
            id=str(i),
            job_type="m",
            total_steps=float(rng.integers(200, 3000)),
            arrival=float(i * 60),
            workers=int(rng.choice([1, 2, 4])),
        )
        for i in range(30)
    ]
    res = simulate(pool, workload(jobs), tp, get_policy("fifo"), SimConfig(60, placement="fgd"))
    s = res.summary()
    assert s["jobs_completed"] == 30
    series = s["fragmentation"]
    assert len(series["t"]) > 3 and len(series["t"]) == len(series["fragmented_share"])
    assert 0 <= s["mean_fragmented_share"] <= 1
    assert max(series["allocated_share"]) <= 1.0
    assert s["config"]["placement"] == "fgd"


def test_unconsolidated_rate_comes_from_gavels_measured_table():
    from computepool.catalog.throughputs import load_throughputs
    from computepool.model.pool import Node, Pool

    tp = load_throughputs("gavel")
    base = make_pool({"V100": (2, 2)}, accels=[tp.accelerators["V100"]])
    nodes = (Node("v0", "r1", "V100", 2, island="x"), Node("v1", "r1", "V100", 2, island="y"))
    pool = Pool("split", base.accelerators, base.regions, nodes)
    jt = "ResNet-18 (batch size 16)"
    w = workload([Job(id="0", job_type=jt, workers=4)])
    p = PoolPlacer(pool, w, tp, "bestfit")
    placements, ok = p.place(np.array([0]), np.array([0]), 0.0)
    want = tp.unconsolidated[(jt, 4)]["V100"] / tp.measured[(jt, 4)]["V100"]
    assert ok.all() and placements[0].rate_factor == pytest.approx(want)
    assert 0.3 < want < 0.4  # Gavel measured ~0.33 for this model on V100
