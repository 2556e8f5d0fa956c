"""The simulator's loop applies the scheduler's plan; a start the cluster could not do is an
observation of the next step: the job waits again, with the reason, and is not charged."""

from dataclasses import replace

import numpy as np

from computepool.model.job import Job
from computepool.policies import get_policy
from computepool.scheduler.contract import Applied
from computepool.scheduler.loop import Scheduler, SchedulerConfig
from computepool.sim.cluster import SimClock, SimulatedCluster, WorkloadSource
from computepool.sim.loop import SimLoop
from tests.builders import make_pool, rates_table, workload


class RefusingCluster(SimulatedCluster):
    """Refuses the next ``times`` starts of ``job`` and says so."""

    def __init__(self, *args, job: int, times: int, **kw):
        super().__init__(*args, **kw)
        self.job, self.times = job, times

    def apply(self, plan):
        if self.times > 0 and self.job in plan.start.tolist():
            self.times -= 1
            keep = plan.start != self.job
            plan = replace(
                plan,
                start=plan.start[keep],
                start_flavor=plan.start_flavor[keep],
                start_delay=plan.start_delay[keep] if len(plan.start_delay) else plan.start_delay,
                start_partner=(
                    plan.start_partner[keep] if len(plan.start_partner) else plan.start_partner
                ),
            )
            super().apply(plan)
            return Applied({self.job: "node n0 is on fire"})
        return super().apply(plan)


class Events:
    def __init__(self):
        self.seen = []

    def on_event(self, job, kind, now, detail=""):
        self.seen.append((job, kind, now, detail))


def _run(times: int):
    pool = make_pool({"A": (1, 1)})
    tp = rates_table(pool, {"m": {"A": 1.0}})
    w = workload([Job(id="a", job_type="m", total_steps=100.0)])
    clock = SimClock(0.0)
    rates = np.ones((1, 1))
    cluster = RefusingCluster(w, rates, job=0, times=times)
    src = WorkloadSource(w)
    s = Scheduler(
        pool, w, tp, get_policy("fifo"), cluster, clock, src, SchedulerConfig(round_seconds=60)
    )
    sink = Events()
    return s, SimLoop(s, cluster, clock, src, sink), sink


def test_a_failed_start_is_observed_next_step_and_the_job_waits_with_the_reason():
    s, loop, sink = _run(times=1)
    assert loop.step()  # t=0: the start is planned; the cluster cannot do it
    assert loop.start_failed == {0: "node n0 is on fire"}
    s.clock.sleep_until(60.0)
    assert loop.step()  # t=60: observed; the job waits again for this round
    kinds = [(k, d) for _, k, _, d in sink.seen]
    assert kinds[-1] == ("requeued", "start failed: node n0 is on fire")
    assert s.active.running.tolist() == [-1]
    assert np.isnan(s.history.first_start[0]) and s.history.starts[0] == 0
    assert s.history.accel_seconds[0] == 0.0  # it never ran: nothing charged
    why = s.pending_reason(0)
    assert why is not None and why.source == "start" and "on fire" in why.reason
    s.clock.sleep_until(120.0)
    loop.step()  # t=120: it starts again, and runs to the end
    assert s.pending_reason(0) is None
    loop.run()
    assert s.history.first_start[0] == 120.0
    assert s.history.end[0] == 220.0
    assert [k for _, k, _, _ in sink.seen] == [
        "admitted",
        "running",
        "requeued",
        "running",
        "succeeded",
    ]


def test_without_failures_the_loop_gives_the_schedulers_own_answer():
    s, loop, _ = _run(times=0)
    loop.run()
    s2, _, _ = _run(times=0)
    s2.run()  # the scheduler's own simplest loop
    assert s.history.end[0] == s2.history.end[0] == 100.0


def test_a_loop_without_sink_builds_no_events_and_gives_the_same_answer():
    s, loop, sink = _run(times=1)
    loop.run()
    running = [d for _, k, _, d in sink.seen if k == "running"]
    assert running == [s.pool.flavors[0].name] * 2  # each start names its flavor
    s2, _, _ = _run(times=1)
    quiet = SimLoop(s2, s2.cluster, s2.clock, s2.source)  # no sink
    assert s2.state.outbox.keep_events is False
    quiet.run()
    assert s2.state.outbox.events == []
    assert s2.history.end[0] == s.history.end[0] == 220.0
