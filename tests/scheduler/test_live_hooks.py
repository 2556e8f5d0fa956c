"""The core's live-pool hooks: a growing workload, adopting running jobs, cancelling."""

import numpy as np

from computepool.model.job import Job
from computepool.model.workload import Workload
from computepool.policies import get_policy
from computepool.scheduler.loop import CANCELLED, Scheduler, SchedulerConfig
from computepool.sim.cluster import SimClock
from tests.builders import make_pool, rates_table
from tests.fakes import RecordingCluster


class ListSource:
    def __init__(self):
        self.pending = []

    def arrivals(self, now):
        out, self.pending = self.pending, []
        return out

    def next_arrival(self):
        return float("inf")

    def exhausted(self):
        return False


def test_workload_append_keeps_indices_and_adds_classes_and_tenants():
    w = Workload.empty("live")
    a = w.append([Job(id="10", tenant="x", job_type="m", workers=2, arrival=5.0)])
    b = w.append(
        [
            Job(id="11", tenant="y", job_type="m", workers=1, arrival=1.0),
            Job(id="12", tenant="x", job_type="m", workers=2, arrival=2.0),
        ]
    )
    assert a.tolist() == [0] and b.tolist() == [1, 2]
    assert w.ids == ["10", "11", "12"] and w.tenants == ["x", "y"]
    assert w.arrival.tolist() == [5.0, 1.0, 2.0]  # not re-sorted: indices are stable
    assert w.job_class.tolist() == [0, 1, 0] and len(w.classes) == 2
    assert w.scale_factor.tolist() == [2, 1, 2]
    assert w.append([]).tolist() == []


def _live():
    pool = make_pool({"A": (1, 4)})
    w = Workload.empty()
    src = ListSource()
    cluster = RecordingCluster()
    s = Scheduler(
        pool,
        w,
        rates_table(pool, {"m": {"A": 1.0}}),
        get_policy("fifo"),
        cluster,
        SimClock(0.0),
        src,
        SchedulerConfig(round_seconds=1.0),
    )
    return s, w, src, cluster


def test_jobs_appended_while_running_are_admitted_and_started():
    s, w, src, cluster = _live()
    s.step()
    src.pending = w.append([Job(id="1", job_type="m", workers=2, total_steps=10)]).tolist()
    s.clock.sleep_until(1.0)
    s.step()
    assert cluster.plans[-1].start.tolist() == [0]
    src.pending = w.append([Job(id="2", job_type="m", workers=3, total_steps=10)]).tolist()
    s.clock.sleep_until(2.0)
    s.step()  # a new class (3 accelerators) is admitted; it waits for room
    assert s.active.job.tolist() == [0, 1] and s.active.running.tolist() == [0, -1]


def test_adopt_takes_over_a_running_job_without_starting_it():
    s, w, src, cluster = _live()
    w.append([Job(id="7", job_type="m", workers=4, total_steps=10)])
    ok = s.adopt(np.array([0]), np.array([0]), np.array([-30.0]))
    assert ok.tolist() == [True]
    s.step()
    assert s.active.running.tolist() == [0]
    assert all(len(p.start) == 0 for p in cluster.plans)  # never started again
    assert s.history.first_start[0] == -30.0


def test_cancel_kills_a_running_job_and_withdraws_a_waiting_one():
    s, w, src, cluster = _live()
    src.pending = w.append(
        [Job(id=str(i), job_type="m", workers=4, total_steps=10) for i in range(2)]
    ).tolist()
    s.step()
    assert s.active.running.tolist() == [0, -1]
    gone = s.cancel(np.array([0, 1, 5]))
    assert gone.tolist() == [0, 1, 5]
    assert cluster.plans[-1].kill.tolist() == [0]
    assert len(s.active) == 0 and (s.history.state[[0, 1]] == CANCELLED).all()
    assert s.cancel(np.array([0])).tolist() == []  # already cancelled
