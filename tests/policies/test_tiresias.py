"""Tiresias' queue crossings: a job that reaches a threshold exactly on a round boundary is
demoted then and there (``allocate`` and ``next_change`` agree on which queue it is in)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from computepool.policies import get_policy
from computepool.sim.run import SimConfig, simulate
from tests.builders import jobs_at, make_pool, rates_table, workload


def _run(arrivals, steps, round_s: float = 360.0):
    pool = make_pool({"A": (1, 1)})
    tp = rates_table(pool, {"m": {"A": 1.0}})
    jobs = [jobs_at([t], steps=float(s))[0] for t, s in zip(arrivals, steps, strict=True)]
    jobs = [replace(j, id=str(i)) for i, j in enumerate(jobs)]
    cfg = SimConfig(round_seconds=round_s)
    return simulate(pool, workload(jobs), tp, get_policy("tiresias"), cfg)


def test_short_job_overtakes_a_long_one_at_the_first_threshold_on_a_round_boundary():
    # the 3 h job reaches the 1 h threshold at 3,600 s, exactly the end of round 10 of 360 s;
    # the 60 s job that arrived at 10 s then has less service and runs next (Tiresias), not
    # after the long job has finished (FIFO, what a queue-crossing missed on the boundary gave)
    res = _run([0.0, 10.0], [3 * 3600.0, 60.0])
    assert res.first_start[1] == pytest.approx(3600.0, abs=1.0)
    assert res.end[1] == pytest.approx(3660.0, abs=1.0)
    # the long job resumes at the next round boundary (3,960 s) with 2 h left
    assert res.end[0] == pytest.approx(3960.0 + 2 * 3600.0, abs=1.0)


@pytest.mark.parametrize("round_s", [360.0, 600.0, 900.0, 1200.0])
def test_crossing_is_seen_whatever_the_round_length(round_s):
    # every round length here divides 3,600 s: the crossing is always on a boundary
    res = _run([0.0, 10.0], [3 * 3600.0, 60.0], round_s=round_s)
    assert res.first_start[1] <= 3600.0 + 1.0
    assert np.isfinite(res.end).all()
