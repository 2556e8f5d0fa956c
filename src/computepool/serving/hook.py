"""ServingHook: the one serving controller, the ``Scheduler``'s ``serving`` hook.

The round is the same for the simulator and the live pool; what differs is injected:

* a **replica driver** (``ReplicaDriver``): where replicas live and what they report. The
  simulator's (``controller.SimulatedReplicas``) replays the requests on the replicas that
  were up; the live pool's (``live_pool.ProcessReplicas``) runs a ``Supervisor`` of replica
  processes per service (health checks, device binding, ``/metrics`` scraping);
* a **clock** (``Clock``): the simulator decides at the Scheduler's time (``SchedulerClock``),
  the live pool at the wall clock's (``MonotonicClock``), every ``decide_every_s`` seconds.

Each round ``reserve(inp)``: the driver measures (``advance``: replay the elapsed requests, or
health-check the processes); every ``decide_every_s`` the autoscaler decides what each service
needs (``decide``); surplus replicas are released (``release``: their accelerators go back to
the training queue at once); replicas are added where short (``grow``), on free accelerators
first, else by preempting preemptible running jobs on the flavor, least attained service first
(``RoundCapacity.evict_for``); the round is accounted (``account``). Returns the accelerators per
flavor the services hold and the rows to preempt; the Scheduler gives the training policy only
what is left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from computepool.policies.base import PolicyInput


@dataclass(frozen=True)
class Reservation:
    capacity: np.ndarray  # (F,) accelerators held by services from this round on
    evict: np.ndarray  # (n,) bool over the PolicyInput rows: preempt now


class RoundCapacity:
    """Free accelerators and preemption candidates during one ``reserve``."""

    def __init__(self, inp: PolicyInput, free: np.ndarray, candidates, evict) -> None:
        self.inp, self.free, self.evict = inp, free.astype(np.float64), evict
        self.freed = np.zeros_like(self.free)  # of ``free``: coming from jobs preempted now
        self.cand = candidates

    def evict_for(self, f: int, devices: float) -> bool:
        """Preempt preemptible rows on flavor ``f`` (least attained first) to free ``devices``."""
        inp = self.inp
        rows = np.nonzero(self.cand & (inp.running == f) & ~self.evict)[0]
        if len(rows) == 0:
            return False
        rows = rows[np.argsort(inp.attained[rows], kind="stable")]
        got = np.cumsum(inp.scale_factor[rows])
        if got[-1] < devices:
            return False
        k = int(np.searchsorted(got, devices - 1e-9)) + 1
        self.evict[rows[:k]] = True
        self.free[f] += got[k - 1]
        self.freed[f] += got[k - 1]
        return True


class Clock(Protocol):
    def now(self, inp: PolicyInput) -> float: ...


class SchedulerClock:
    """The Scheduler's time (the simulator's: the round's ``inp.now``)."""

    def now(self, inp: PolicyInput) -> float:
        return float(inp.now)


class MonotonicClock:
    """Seconds of the wall clock since the controller started (the live pool's)."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now(self, inp: PolicyInput) -> float:
        return time.monotonic() - self._t0


class ReplicaDriver(Protocol):
    """Where the replicas live: simulated (replayed requests) or processes."""

    @property
    def closed(self) -> bool: ...

    def held(self) -> np.ndarray:
        """(F,) accelerators per flavor the replicas hold (packed devices counted whole)."""
        ...

    def advance(self, now: float) -> bool:
        """Bring the replicas to ``now`` (replay, health checks); False once closed."""
        ...

    def decide(self, now: float) -> Any:
        """The autoscaler's decision for every service (kept by the driver's replicas)."""
        ...

    def release(self, plans: Any, now: float) -> None:
        """Remove surplus replicas; their accelerators are free from now on."""
        ...

    def grow(self, plans: Any, ctx: RoundCapacity, now: float) -> None:
        """Add replicas where short, taking accelerators from ``ctx``."""
        ...

    def account(self, now: float, plans: Any) -> None:
        """Record the state after the round."""
        ...


class ServingHook:
    """The serving controller: the shared round over an injected driver and clock."""

    def __init__(
        self,
        driver: ReplicaDriver,
        clock: Clock,
        interval_s: float,
        decide_every_s: float = 0.0,
        preemptible: np.ndarray | None = None,
    ) -> None:
        self.driver, self.clock = driver, clock
        self._interval_s = interval_s
        self._decide_every_s = decide_every_s
        #: Preemptible jobs (by job index); None: the round's workload says.
        self.preemptible = preemptible
        self._next = 0.0  # the clock's time of the next autoscaling decision
        self._plans: Any = None

    def __getattr__(self, name: str) -> Any:
        """The driver's state (``states``, ``record``, ``pool``, ...) reads through the
        controller."""
        if name == "driver":  # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self.driver, name)

    # ---- the Scheduler hook --------------------------------------------------------
    def held(self) -> np.ndarray:
        """Accelerators per flavor held by services (packed devices counted whole)."""
        return self.driver.held()

    def active(self, now: float) -> bool:
        return not self.driver.closed

    @property
    def interval_s(self) -> float:
        """Seconds between the services' rounds (the Scheduler wakes up this often)."""
        return self._interval_s

    def reserve(self, inp: PolicyInput) -> Reservation:
        d = self.driver
        evict = np.zeros(inp.n, dtype=bool)
        now = self.clock.now(inp)
        if d.closed or not d.advance(now):
            return Reservation(np.zeros(len(inp.capacity), dtype=np.int64), evict)
        if now >= self._next:
            self._plans = d.decide(now)
            self._next = now + self._decide_every_s
        d.release(self._plans, now)
        run = inp.running >= 0
        used = np.bincount(
            inp.running[run], weights=inp.scale_factor[run], minlength=len(inp.capacity)
        )
        ctx = RoundCapacity(inp, inp.capacity - d.held() - used, run & self._candidates(inp), evict)
        d.grow(self._plans, ctx, now)
        d.account(now, self._plans)
        return Reservation(d.held().astype(np.int64), ctx.evict)

    def _candidates(self, inp: PolicyInput) -> np.ndarray:
        """Rows that may be preempted for a replica."""
        if inp.n == 0:
            return np.ones(0, dtype=bool)
        if self.preemptible is not None:
            return self.preemptible[inp.job]
        w = inp.extras.get("workload")
        return w.preemptible[inp.job] if w is not None else np.ones(inp.n, dtype=bool)
