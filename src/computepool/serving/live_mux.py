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
or the group's instance count calls for more. That count is the simulator's: ``GroupSizer``
sizes the group on its members' *total* load (the sum of their measured request rates and
backlogs, their mixes weighted by rate) with ``mux.group_plan`` and
``autoscaler.plan_need`` / ``replicas_after``, the functions the simulator's group state
decides with, from its warm start (the simulator's first decision over the previous period);
each awake member then runs on its share of the instances (``spread``: in proportion to its
rate, at least one), one engine process per instance. Members that fit are started at once
(a warm start; the simulator's instances start empty), the others when first asked for.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from computepool.serving import autoscaler as asc
from computepool.serving.activity import Activity
from computepool.serving.binding import DevicePlacer
from computepool.serving.mux import Members, busy_instances, group_plan, lru_victims
from computepool.serving.perf import Mix, ShapeTable
from computepool.serving.service import ServingConfig
from computepool.serving.supervisor import Replica

if TYPE_CHECKING:
    from computepool.serving.hook import RoundCapacity
    from computepool.serving.live_pool import LiveServiceState
    from computepool.serving.state import ServiceState


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
    #: Set by the controller for one start: the start may bind a new instance (``prefer_new``:
    #: must, to spread the group over the instances its sizer wants).
    allow_new: bool = False
    prefer_new: bool = False

    def held(self) -> int:
        return len(self.instances) * self.tp

    def room(self, need: float, service: str = "") -> int | None:
        """The fullest instance that still holds ``need`` bytes (best fit) and does not run
        ``service`` yet (a second engine of a model on one instance adds nothing), or None."""
        fits = [
            (i.used(), k)
            for k, i in self.instances.items()
            if i.used() + need <= self.budget and all(n != service for n, _ in i.members.values())
        ]
        return max(fits)[1] if fits else None

    def take(self, r: Replica, service: str, need: float) -> bool:
        key = None if self.prefer_new else self.room(need, service)
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


@dataclass
class GroupSizer:
    """A live mux group's instance count, decided as the simulator decides its group state's:
    ``mux.group_plan`` (capacity of one instance at the members' activity, the memory and
    step-time floor) and ``autoscaler.plan_need`` / ``replicas_after`` over the total load."""

    shape: ShapeTable  # the group's instance shape (the simulator's group state's)
    members: Members
    mem_bytes: float
    tbt_slo_s: float
    max_instances: int
    cfg: ServingConfig
    instances: int = 1
    hist_t: list[float] = field(default_factory=list)
    hist_rate: list[float] = field(default_factory=list)
    hist_need: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, g: ServiceState, cfg: ServingConfig, warm) -> GroupSizer:
        """From the simulator's group state ``g`` after its first decision ``warm`` (need,
        floor, capacity), which is held like any decision for ``scale_down_delay_s``."""
        rep = g.replay
        out = cls(g.shapes, rep.members, rep.mem_bytes, g.spec.tbt_slo_s, g.spec.max_replicas, cfg)
        if warm is not None:  # the simulator's first decision and its history so far
            need, _, cap = warm
            out.instances = asc.replicas_for(need, float(cap[0]), 1, out.max_instances)
            out.hist_t, out.hist_rate = list(g.hist_t), list(g.hist_rate)
            out.hist_need = list(g.hist_need)
        return out

    def decide(
        self,
        now: float,
        rate: float,
        backlog_flops: float,
        mix: Mix,
        dec: np.ndarray,
        res: np.ndarray,
        busy: np.ndarray,
        mean_k: float,
        replicas: int,
    ) -> int:
        """Instances wanted after one decision at ``now`` (``replicas``: those held now);
        ``busy``: the instances each member's prompts keep busy (``mux.busy_instances``)."""
        cfg = self.cfg
        cap, floor0 = group_plan(self.shape, self.members, self.mem_bytes, cfg.perf, dec, res, busy,
                                 replicas, mean_k, mix, self.tbt_slo_s, cfg.target_utilization)  # fmt: skip
        need, floor = asc.plan_need(self.hist_t, self.hist_rate, self.hist_need, now, rate,
                                    backlog_flops, mix, floor0, cfg)  # fmt: skip
        self.instances = asc.replicas_after(need, floor, float(cap[0]), replicas, 1,
                                            self.max_instances)  # fmt: skip
        return self.instances


def group_load(states: list[LiveServiceState], activity: Activity, sz: GroupSizer) -> tuple:
    """A group's total load as its sizer reads it, from its members (in the group's order):
    (request rate, backlog FLOPs, mix weighted by rate, decoding, resident, busy instances,
    mean per-token decode cost). Decoding: requests in flight or held. Resident (what must
    fit, the memory floor): the same members, those that cannot be evicted; the simulator
    counts every model used within ``keep_alive_s`` (it sizes for them because its evictions
    are free), the live pool evicts an idle resident for real (a measured cold start) rather
    than binding another instance for it. Busy instances: a member's measured prompt work
    (rate x mean prefill FLOPs) over the group's instance FLOP/s, as the simulator counts
    the copies of a busy member's weights (``mux.busy_instances``)."""
    m = sz.members
    rates = np.array([s.autoscaler.rate[-1] if s.autoscaler.rate else 0.0 for s in states])
    mixes = [s.autoscaler.mix for s in states]
    w = rates / rates.sum() if rates.sum() > 0 else np.full(len(states), 1.0 / len(states))
    mix = Mix(*(float(np.dot(w, [getattr(x, f) for x in mixes]))
                for f in ("prefill_flops", "output_tokens", "context_tokens")))  # fmt: skip
    backlog = sum(s.autoscaler.queued * x.prefill_flops for s, x in zip(states, mixes, strict=True))
    dec = np.array([activity.busy(s.spec.name) for s in states])
    res = dec.copy()
    dw = sz.cfg.decode_window_s
    work = np.array([r * x.prefill_flops * dw for r, x in zip(rates, mixes, strict=True)])
    busy = busy_instances(work, float(sz.shape.flops[0]), dw) * dec
    k = np.array([x.context_tokens for x in mixes]) * m.kvr + m.c
    out = np.array([x.output_tokens for x in mixes]) * w
    mean_k = float((out * k).sum() / out.sum()) if out.sum() > 0 else float(k.mean())
    return float(rates.sum()), float(backlog), mix, dec, res, busy, mean_k


def spread(instances: int, rates: list[float]) -> list[int]:
    """On how many of a group's ``instances`` each awake member runs: in proportion to its
    rate (the busiest on all of them when it carries nearly all), at least one."""
    total = sum(rates)
    if total <= 0:
        return [1] * len(rates)
    return [min(max(math.ceil(instances * r / total - 1e-9), 1), instances) for r in rates]


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
    devs: MuxDevices,
    states: dict[str, LiveServiceState],
    need: float,
    activity: Activity,
    service: str = "",
) -> list[tuple[LiveServiceState, Replica]] | None:
    """Idle members to stop (least recently used first) on the instance where the fewest must
    go for ``need`` bytes; members still stopping (an earlier eviction) count as gone: ``[]``
    when their leaving makes room (wait for them, evict nobody more)."""
    running = {id(r): (s, r) for s in states.values() for r in s.supervisor.replicas}
    best = None
    for inst in devs.instances.values():
        if any(n == service for n, _ in inst.members.values()):
            continue  # it runs there already
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
    instances: int | None = None,
) -> None:
    """Start member ``s``'s missing replicas: room on an instance; else, when requests wait
    for it, evict the least recently used idle members; else a new instance when the group
    has none, requests wait for ``s``, or the group holds fewer than ``instances`` (its
    sizer's count; None: ``s`` runs and wants more while every resident is busy), on free
    devices, or preempting training as any replica does."""
    name = s.spec.name
    woken = activity.waiting(name) > 0
    for _ in range(max(s.target - len(s.supervisor.replicas), 0)):
        spread_out = instances is not None and len(devs.instances) < instances
        # the sizer wants another instance: this replica binds it (when devices are free or
        # preemptible); else room on an instance, eviction, or a new instance as below
        if not (spread_out and _new_instance(s, devs, ctx, True)) and (
            devs.room(s.need_bytes, name) is None
        ):
            out = _victims(devs, states, s.need_bytes, activity, name) if woken else None
            if out == []:  # room comes when members still stopping are gone
                return
            if out:
                for v, r in out:
                    v.supervisor.remove(r)
                    v.asleep = True
                    activity.count(v.spec.name, "evictions")
                return  # room once the victims' processes are gone (a later round)
            if devs.instances and not (woken or _all_busy(s, devs, activity, instances)):
                return
            if spread_out or not _new_instance(s, devs, ctx, False):
                return  # no devices for a new instance (spread_out: tried above)
        try:
            if s.supervisor.start_one() is None:
                return
        finally:
            devs.allow_new = devs.prefer_new = False


def _all_busy(s: LiveServiceState, devs: MuxDevices, activity: Activity, instances) -> bool:
    """Without a sizer: ``s`` runs and every resident member is busy."""
    if instances is not None or not s.supervisor.replicas:
        return False
    return all(activity.busy(n) for i in devs.instances.values() for n, _ in i.members.values())


def _new_instance(s: LiveServiceState, devs: MuxDevices, ctx: RoundCapacity, spread: bool) -> bool:
    """Let the next start bind a new instance (free devices, else preempting training as
    any replica does); False when there are none."""
    if ctx.free[devs.flavor] < devs.tp:
        if not ctx.evict_for(devs.flavor, devs.tp - ctx.free[devs.flavor]):
            return False
        s.preemptions += 1
    ctx.free[devs.flavor] -= devs.tp
    devs.allow_new, devs.prefer_new = True, spread
    return True


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
