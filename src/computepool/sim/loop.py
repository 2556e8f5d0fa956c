"""The simulator's loop: it owns the clock, the cluster and the arrivals; the scheduler plans.

Each step: observe the ``SimulatedCluster`` (with the starts it could not do last step) -> the
workload's arrivals -> ``Scheduler.plan`` -> apply the plans to the cluster -> tell the sink
the events -> jump the clock to the scheduler's next time. The live pool runs the same steps
on a wall clock (``server/live_loop.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from computepool.scheduler.contract import deliver, with_start_failures
from computepool.scheduler.interfaces import Clock, JobSink, JobSource
from computepool.scheduler.loop import Scheduler


@dataclass
class SimLoop:
    """Drives one Scheduler over a simulated cluster, a jumping clock and a job source."""

    scheduler: Scheduler
    cluster: Any
    clock: Clock
    source: JobSource
    sink: JobSink | None = None
    #: Starts the cluster could not do in the last step (job -> why), observed next step.
    start_failed: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Without a sink (here or the scheduler's own) nothing reads the steps' events: the
        # outbox does not build them (a time-shared round tells ~100, the whole of a run's
        # output otherwise being the job history and the round series).
        if self.sink is None and self.scheduler.sink is None:
            self.scheduler.state.outbox.keep_events = False

    def step(self) -> bool:
        """One step at the clock's time; False when all work is done."""
        now = self.clock.now()
        obs = with_start_failures(self.cluster.observe(now), self.start_failed)
        self.start_failed = {}
        arrivals = self.source.arrivals(now)
        out = self.scheduler.plan(obs, arrivals, self.source.exhausted())
        deliver(out, self.cluster, self.sink, self.start_failed)
        return out.more

    def run(
        self,
        until: float = math.inf,
        on_round: Callable[[Scheduler], None] | None = None,
        stop: Callable[[Scheduler], bool] | None = None,
    ) -> None:
        """Step until all work is done, ``until`` is reached or ``stop`` says so."""
        s = self.scheduler
        while True:
            if not self.step():
                break
            if on_round is not None:
                on_round(s)
            if stop is not None and stop(s):
                break
            now = self.clock.now()
            t = s.next_time(now, self.cluster.next_event_time(), self.source.next_arrival())
            if t > until:
                break
            self.clock.sleep_until(t)
