"""The placement engine as the live Placer: declared worker shapes, gangs, adoption claims."""

import numpy as np

from computepool.backends.engine_placer import LivePlacer
from computepool.model.job import Job
from computepool.model.workload import Workload
from computepool.scheduler.interfaces import Placement
from tests.builders import make_pool, rates_table


def _placer(shapes):
    pool = make_pool({"A": (2, 8)})
    w = Workload.empty()
    w.append([Job(id=str(i), job_type="m", workers=n * per) for i, (n, per) in enumerate(shapes)])
    return LivePlacer(pool, w, rates_table(pool, {"m": {"A": 1.0}}), lambda j: shapes[j]), pool


def test_workers_are_the_processes_the_job_declared():
    placer, _ = _placer([(4, 2), (2, 8)])
    out, ok = placer.place(np.array([0]), np.array([0]), 0.0)
    assert ok.tolist() == [True]
    (p,) = out
    assert len(p.workers) == 4 and all(len(d) == 2 for _, d in p.workers)
    devs = [(n, d) for n, ds in p.workers for d in ds]
    assert len(set(devs)) == 8  # no device given twice
    # 2 x 8 needs both nodes whole: one is half used, so it waits; after release it fits
    out, ok = placer.place(np.array([1]), np.array([0]), 0.0)
    assert ok.tolist() == [False] and out == []
    placer.release(np.array([0]))
    out, ok = placer.place(np.array([1]), np.array([0]), 0.0)
    assert ok.tolist() == [True] and sorted(n for n, _ in out[0].workers) == [0, 1]


def test_claim_holds_exactly_the_adopted_slots():
    placer, _ = _placer([(1, 4), (1, 8), (1, 4)])
    assert placer.claim(Placement(0, 0, ((1, (4, 5, 6, 7)),)))
    assert not placer.claim(Placement(2, 0, ((1, (3, 4)),)))  # device 4 is taken
    out, ok = placer.place(np.array([1]), np.array([0]), 0.0)
    assert ok.tolist() == [True] and out[0].workers[0][0] == 0  # node 1 is half taken
    placer.release(np.array([0]))
    assert placer.claim(Placement(2, 0, ((1, (3, 4)),)))
