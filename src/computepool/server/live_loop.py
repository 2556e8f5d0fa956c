"""The live pool's loop: it owns the backend, the submission queue and the store's sink; the
scheduler plans.

A round: observe the backend (with the starts it could not do last time) -> read submissions
-> ``Scheduler.plan`` -> apply the plans to the backend -> buffer the events in the
``StoreSink`` (written by the service in one transaction). Cancellations and adoptions between
rounds go the same way: the scheduler plans the kill, this loop applies it. A start the backend
could not do (``Applied.start_failed``) is an observation of the next round: the job waits
again with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from computepool.scheduler.contract import deliver, with_start_failures
from computepool.scheduler.interfaces import JobSink, JobSource
from computepool.scheduler.loop import Scheduler


@dataclass
class LiveLoop:
    scheduler: Scheduler
    cluster: Any
    source: JobSource
    sink: JobSink | None
    #: Starts the backend could not do (job -> why), observed in the next round.
    start_failed: dict[int, str] = field(default_factory=dict)

    def round(self) -> bool:
        """One round at the wall clock's time; False when the scheduler has nothing left."""
        s = self.scheduler
        now = s.clock.now()
        obs = with_start_failures(self.cluster.observe(now), self.start_failed)
        self.start_failed = {}
        arrivals = self.source.arrivals(now)
        out = s.plan(obs, arrivals, self.source.exhausted())
        deliver(out, self.cluster, self.sink, self.start_failed)
        return out.more

    def cancel(
        self, jobs: np.ndarray, reason: str = "cancelled", kind: str = "cancelled"
    ) -> np.ndarray:
        """Withdraw ``jobs`` now; running ones are killed on the backend."""
        s = self.scheduler
        gone = s.withdraw(jobs, s.clock.now(), reason, kind)
        deliver(s.take(), self.cluster, self.sink, self.start_failed)
        return gone

    def adopt(self, jobs: np.ndarray, flavors: np.ndarray, started_at: np.ndarray) -> np.ndarray:
        """Take over jobs found running at start-up (``Scheduler.take_over``)."""
        s = self.scheduler
        ok = s.take_over(jobs, flavors, started_at)
        deliver(s.take(), self.cluster, self.sink, self.start_failed)
        return ok
