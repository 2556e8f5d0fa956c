"""Several models on one device slot, and scale to zero, on the live pool.

The simulator's multiplexing (``mux.py``, ``muxplan.py``) made live, the way MuxServe
(ICML'24) co-locates models: one engine *process* per model on a shared instance (``tp``
whole devices of one flavor bound through the pool's placer), each started with its share of
the devices' memory (vLLM's ``--gpu-memory-utilization``, SGLang's ``--mem-fraction-static``,
the emulator's same flag: ``Engine.memory_args``), compute time-shared by the device. Which
services share instances, and how many devices an instance takes, come from the simulator's
own ``muxplan.groups_of`` (the same code, the same decisions); a member fits an instance when
the reservations of the members there (``mux.member_bytes``: weights + ``min_kv_tokens`` of
KV cache) stay within ``mux.instance_bytes`` (``memory_usable`` of its memory), the rule the
simulator applies to the models resident on an instance.

Scale to zero follows Knative's activator and ServerlessLLM (OSDI'24): a service with
``scale_to_zero:`` (and every mux member, with ``serving.keep_alive_s`` as its idle window)
whose requests stopped ``idle_s`` ago is stopped and its devices go back to the training queue;
a request for it waits at the gateway (bounded, ``server/activator.py``) while this controller
starts a replica; that wait is the measured cold start. A woken member with no memory left on
its group's instances evicts the least recently used idle member (``mux.lru_victims``); a
group takes another instance only when it has none, a woken member cannot fit by eviction,
or a running member's autoscaler wants more while every resident member is busy. Members
that fit are started at once (a warm start; the simulator's instances start empty), the
others when first asked for.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from computepool.serving.activity import Activity
from computepool.serving.binding import DevicePlacer
from computepool.serving.mux import lru_victims
from computepool.serving.supervisor import Replica

if TYPE_CHECKING:
    from computepool.serving.hook import RoundCapacity
    from computepool.serving.live_pool import LiveServiceState


@dataclass
class Instance:
    node: int
    devices: tuple[int, ...]
    #: id(replica) -> (service, bytes reserved)
    members: dict[int, tuple[str, float]] = field(default_factory=dict)

    def used(self) -> float:
        return sum(b for _, b in self.members.values())


@dataclass
class MuxDevices:
    """The instances of one live mux group and what each member reserves on them."""

    placer: DevicePlacer | None
    flavor: int
    tp: int
    budget: float  # bytes one instance offers its members (mux.instance_bytes)
    keys: Iterator[int] = field(default_factory=lambda: itertools.count(-1, -1))
    instances: dict[int, Instance] = field(default_factory=dict)
    #: Set by the controller for one start: the start may bind a new instance.
    allow_new: bool = False

    def held(self) -> int:
        return len(self.instances) * self.tp

    def room(self, need: float) -> int | None:
        """The fullest instance that still holds ``need`` bytes (best fit), or None."""
        fits = [(i.used(), k) for k, i in self.instances.items() if i.used() + need <= self.budget]
        return max(fits)[1] if fits else None

    def take(self, r: Replica, service: str, need: float) -> bool:
        key = self.room(need)
        if key is None:
            if not self.allow_new:
                return False
            key = next(self.keys)
            if self.placer is None:
                got: tuple[int, tuple[int, ...]] | None = (-1, ())
            else:
                got = self.placer.bind_devices(key, self.flavor, self.tp)
            if got is None:
                return False
            self.instances[key] = Instance(got[0], got[1])
        inst = self.instances[key]
        inst.members[id(r)] = (service, need)
        r.node, r.devices = inst.node, inst.devices
        return True

    def give(self, r: Replica) -> None:
        for key, inst in list(self.instances.items()):
            if inst.members.pop(id(r), None) is not None:
                if not inst.members:  # the last model left: the devices go back
                    del self.instances[key]
                    if self.placer is not None:
                        self.placer.release(np.array([key], dtype=np.int64))
                return


@dataclass
class MemberSlots:
    """A member service's ``Supervisor.slots``: its replicas take room on the group's
    instances."""

    devices: MuxDevices
    service: str
    need: float

    def take(self, r: Replica) -> bool:
        return self.devices.take(r, self.service, self.need)

    def give(self, r: Replica) -> None:
        self.devices.give(r)


def target(s: LiveServiceState, activity: Activity) -> int:
    """Replicas service ``s`` should have this round: its autoscaler's, at least one while
    requests are held for it, none once idle for its window (or evicted and not woken)."""
    if s.bounds is None:
        return s.want
    name = s.spec.name
    if activity.waiting(name):
        s.asleep = False
        return max(s.want, 1)
    if s.asleep:
        return 0
    if activity.idle_s(name) >= s.bounds.idle_s:
        s.asleep = True
        if s.supervisor.replicas:
            activity.count(name, "scaled_to_zero")
        return 0
    return max(s.want, 1)  # awake: used within its idle window


def _victims(
    devs: MuxDevices, states: dict[str, LiveServiceState], need: float, activity: Activity
) -> list[tuple[LiveServiceState, Replica]] | None:
    """Idle members to stop (least recently used first) on the instance where the fewest must
    go for ``need`` bytes; members still stopping (an earlier eviction) count as gone: ``[]``
    when their leaving makes room (wait for them, evict nobody more)."""
    running = {id(r): (s, r) for s in states.values() for r in s.supervisor.replicas}
    best = None
    for inst in devs.instances.values():
        ids = [rid for rid in inst.members if rid in running]
        leaving = sum(b for rid, (_, b) in inst.members.items() if rid not in running)
        resident = []
        for rid in ids:
            name, size = inst.members[rid]
            a = activity.snapshot(name)
            resident.append((size, a.last_used, bool(a.inflight or a.held)))
        pick = lru_victims(resident, need, devs.budget - inst.used() + leaving)
        if pick is not None and (best is None or len(pick) < len(best)):
            best = [ids[i] for i in pick]
    if best is None:
        return None
    return [running[rid] for rid in best]


def grow_member(
    s: LiveServiceState,
    devs: MuxDevices,
    states: dict[str, LiveServiceState],
    activity: Activity,
    ctx: RoundCapacity,
) -> None:
    """Start member ``s``'s missing replicas: room on an instance; else, when requests wait
    for it, evict the least recently used idle members; else a new instance when the group
    has none, requests wait for ``s``, or ``s`` runs and wants more while every resident is
    busy (on free devices, or preempting training as any replica does)."""
    name = s.spec.name
    woken = activity.waiting(name) > 0
    for _ in range(max(s.target - len(s.supervisor.replicas), 0)):
        if devs.room(s.need_bytes) is None:
            out = _victims(devs, states, s.need_bytes, activity) if woken else None
            if out == []:  # room comes when members still stopping are gone
                return
            if out:
                for v, r in out:
                    v.supervisor.remove(r)
                    v.asleep = True
                    activity.count(v.spec.name, "evictions")
            else:
                busy = all(
                    activity.busy(n) for i in devs.instances.values() for n, _ in i.members.values()
                )
                if devs.instances and not (woken or (busy and s.supervisor.replicas)):
                    return
                if ctx.free[devs.flavor] < devs.tp:
                    if not ctx.evict_for(devs.flavor, devs.tp - ctx.free[devs.flavor]):
                        return
                    s.preemptions += 1
                ctx.free[devs.flavor] -= devs.tp
                devs.allow_new = True
        try:
            if s.supervisor.start_one() is None:
                return
        finally:
            devs.allow_new = False


def activity_status(s: LiveServiceState, activity: Activity, plans) -> dict:
    """The scale-to-zero and multiplexing part of a service's ``GET /services`` entry."""
    a = activity.snapshot(s.spec.name)
    times = sorted(a.cold_start_s)
    out: dict = {
        "scale_to_zero": s.bounds is not None,
        "idle_s": None if s.bounds is None else s.bounds.idle_s,
        "asleep": s.asleep,
        "held_requests": a.held,
        "cold_starts": a.cold_starts,
        "cold_start_s_last": a.cold_start_s[-1] if times else None,
        "cold_start_s_p50": times[len(times) // 2] if times else None,
        "scaled_to_zero": a.scaled_to_zero,
        "evictions": a.evictions,
        "mux_group": None,
        "memory_fraction": s.memory_fraction,
    }
    if s.group is not None:
        gp = plans[s.group]
        out["mux_group"] = f"mux-{s.group}: {gp.tp} x flavor {gp.flavor}"
    return out
