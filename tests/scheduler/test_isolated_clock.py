"""Gavel's cumulative isolated time (finish-time fairness), kept by the scheduler."""

import numpy as np
import pytest

from computepool.policies.ftf import ISOLATED_DONE, FinishTimeFairness
from computepool.scheduler.isolated_clock import IsolatedClock, with_isolated_clock
from computepool.sim.run import SimConfig, simulate
from computepool.sim.runner import load_inputs
from tests.policies.inputs import policy_input


def test_clock_divides_progress_by_the_previous_allocations_rate():
    c = IsolatedClock()
    assert c.advance(np.array([1, 2]), np.array([100.0, 50.0]), np.array([2.0, 1.0])) == {
        1: 0.0,
        2: 0.0,
    }
    # job 1 did 40 steps at the rate of 2 it had then (now 4): +20 s; job 2 made no progress;
    # job 3 is new.
    out = c.advance(np.array([1, 2, 3]), np.array([60.0, 50.0, 10.0]), np.array([4.0, 4.0, 4.0]))
    assert out == {1: pytest.approx(20.0), 2: 0.0, 3: 0.0}
    out = c.advance(np.array([1, 3]), np.array([20.0, 10.0]), np.array([1.0, 1.0]))
    assert out == {1: pytest.approx(30.0), 3: 0.0}
    assert set(c.total) == {1, 3}  # job 2 left the input: forgotten


def test_only_policies_that_ask_get_the_clock():
    inp = policy_input([[1.0], [1.0]], [1], steps_left=[10.0, 10.0])
    c = IsolatedClock()
    assert with_isolated_clock(FinishTimeFairness(reference="elapsed"), c, inp) is inp
    out = with_isolated_clock(FinishTimeFairness(), c, inp)
    assert out.extras[ISOLATED_DONE] == {0: 0.0, 1: 0.0}


class _Recording(FinishTimeFairness):
    def allocate(self, inp):  # records what the scheduler passed in
        self.seen.append((inp.now, dict(inp.extras.get(ISOLATED_DONE, {}))))
        return super().allocate(inp)


def test_simulator_feeds_the_clock_to_ftf():
    inputs = load_inputs("gavel-36x3", "gavel:rate=5.6,jobs=40,multi_gpu=false,seed=0")
    pol = _Recording()
    object.__setattr__(pol, "seen", [])
    simulate(inputs.pool, inputs.workload, inputs.throughputs, pol, SimConfig(until=8 * 3600.0))
    assert len(pol.seen) >= 3
    # a job's total never decreases, and some job accrued isolated time
    last: dict[int, float] = {}
    for _, done in pol.seen:
        for j, t in done.items():
            assert t >= last.get(j, 0.0) - 1e-9
            last[j] = t
    assert max(last.values()) > 0.0


class _Times(FinishTimeFairness):
    def allocate(self, inp):
        self.seen.append((inp.now, frozenset(inp.job.tolist())))
        return super().allocate(inp)


def _run(gavel_admission: bool):
    inputs = load_inputs("gavel-36x3", "gavel:rate=5.6,jobs=30,multi_gpu=false,seed=0")
    pol = _Times()
    object.__setattr__(pol, "seen", [])
    res = simulate(
        inputs.pool,
        inputs.workload,
        inputs.throughputs,
        pol,
        SimConfig(until=6 * 3600.0, gavel_admission=gavel_admission),
    )
    return res, pol.seen


def test_gavel_admission_new_jobs_wait_for_an_allocation_that_includes_them():
    res, seen = _run(True)
    started = np.nonzero(np.isfinite(res.first_start))[0]
    assert len(started) >= 10
    for j in started.tolist():
        # the job started at an allocation that included it (none before it arrived)
        first = min(t for t, jobs in seen if j in jobs)
        assert res.first_start[j] == pytest.approx(first)
    # Gavel resets again at the second round (its last reset time is still 0), then waits
    # the interval
    times = [t for t, _ in seen]
    assert times[:3] == pytest.approx([0.0, 360.0, 2520.0])
    # without it a new job starts at the next round on room the others leave
    res, seen = _run(False)
    waits = res.first_start - res.arrival
    assert np.nanmax(waits) <= 360.0 + 1e-6
    assert [t for t, _ in seen][:2] == pytest.approx([0.0, 2160.0])
