"""ServingHook: the one serving round, with a stub replica driver and clock injected."""

from dataclasses import dataclass, field

import numpy as np

from computepool.policies.base import PolicyInput
from computepool.serving.hook import RoundCapacity, ServingHook


def _inp(now: float, running: list[int], attained: list[float], cap: int = 8) -> PolicyInput:
    n = len(running)
    z = np.zeros(n)
    return PolicyInput(
        now=now,
        job=np.arange(n),
        scale_factor=np.full(n, 2.0),
        weight=np.ones(n),
        arrival=z,
        attained=np.array(attained, dtype=float),
        steps_done=z,
        steps_total=np.ones(n),
        running=np.array(running, dtype=np.int64),
        deadline=np.full(n, np.nan),
        tenant=np.zeros(n, dtype=np.int64),
        job_class=np.zeros(n, dtype=np.int64),
        job_mask_index=np.zeros(n, dtype=np.int64),
        class_throughput=np.ones((1, 1)),
        feasible_masks=np.ones((1, 1), dtype=bool),
        capacity=np.array([cap]),
        price=np.ones(1),
    )


@dataclass
class Clock:
    t: float = 0.0

    def now(self, inp: PolicyInput) -> float:
        return self.t


@dataclass
class Driver:
    """Holds ``have`` accelerators; wants ``want`` (decided); logs each step."""

    have: int = 0
    want: int = 0
    wants: list[int] = field(default_factory=list)  # decisions, in order
    log: list[tuple] = field(default_factory=list)
    closed: bool = False

    def held(self) -> np.ndarray:
        return np.array([float(self.have)])

    def advance(self, now: float) -> bool:
        self.log.append(("advance", now))
        return True

    def decide(self, now: float) -> int:
        self.want = self.wants.pop(0)
        self.log.append(("decide", now))
        return self.want

    def release(self, plans: int, now: float) -> None:
        self.have = min(self.have, plans)

    def grow(self, plans: int, ctx: RoundCapacity, now: float) -> None:
        while self.have < plans:
            if ctx.free[0] < 1 and not ctx.evict_for(0, 1 - ctx.free[0]):
                return
            ctx.free[0] -= 1
            self.have += 1
        self.log.append(("free", float(ctx.free[0])))

    def account(self, now: float, plans: int) -> None:
        self.log.append(("account", now, plans))


def test_decisions_follow_the_injected_clock_and_freed_capacity_counts_at_once():
    d, clock = Driver(have=6, wants=[2, 5]), Clock()
    hook = ServingHook(d, clock, interval_s=1.0, decide_every_s=10.0)
    inp = _inp(now=1e6, running=[0], attained=[0.0])  # the Scheduler's time is not the clock's
    res = hook.reserve(inp)
    # released to 2 first, so 8 - 2 held - 2 used = 4 free before growing (none needed)
    assert d.log == [("advance", 0.0), ("decide", 0.0), ("free", 4.0), ("account", 0.0, 2)]
    assert res.capacity.tolist() == [2] and not res.evict.any()
    clock.t = 9.0  # before the next decision: the last one is kept
    hook.reserve(inp)
    assert ("decide", 9.0) not in d.log and d.have == 2
    clock.t = 10.0
    hook.reserve(inp)
    assert d.log[-3:] == [("decide", 10.0), ("free", 1.0), ("account", 10.0, 5)]


def test_scale_up_preempts_only_preemptible_rows_least_attained_first():
    d = Driver(have=0, wants=[8])
    pre = np.array([True, False, True, True])
    hook = ServingHook(d, Clock(), interval_s=1.0, preemptible=pre)
    # four 2-accelerator jobs fill the flavor; row 1 is not preemptible
    res = hook.reserve(_inp(0.0, running=[0, 0, 0, 0], attained=[5.0, 0.0, 1.0, 3.0]))
    assert d.have == 6  # 3 preemptible jobs x 2 accelerators; the on-demand one stays
    assert res.evict.tolist() == [True, False, True, True]


def test_a_closed_driver_holds_nothing_and_is_not_active():
    d = Driver(have=3, wants=[3], closed=True)
    hook = ServingHook(d, Clock(), interval_s=1.0)
    assert not hook.active(0.0)
    assert hook.reserve(_inp(0.0, [], [])).capacity.tolist() == [0]
    assert d.log == []
