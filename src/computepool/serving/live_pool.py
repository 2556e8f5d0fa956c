"""LiveServingController: services on the live pool (``cpool serve --services FILE``).

The same serving controller as the simulator's (``hook.ServingHook``, the ``Scheduler``'s
``serving`` hook) with the live replica driver ``ProcessReplicas`` and the wall clock
(``hook.MonotonicClock``) injected. Per service the driver runs a ``Supervisor`` of replica processes of the
service's engine (``engines/``: the EMULATED replica by default, or vLLM, SGLang, MindIE,
llama.cpp, any OpenAI-compatible command; health-checked with the engine's readiness probe and
restarted every round) and a ``LiveAutoscaler`` fed by their ``/metrics`` through the
engine's metrics adapter. With ``bind_placer(placer)`` (the live pool's slot assigner or
placement engine) each replica is bound to concrete devices of a node, given to it in its
vendor's variable (``CUDA_VISIBLE_DEVICES``, ``ASCEND_RT_VISIBLE_DEVICES``, ...). The replica shape is chosen once, at start:
the simulator's own first decision over the previous period (``SimulatedReplicas.decide`` at
t=0; the simulator re-chooses per scale-up).

Each round ``reserve(inp)`` (``ServingHook``'s steps): health checks (``advance``); every
``interval_s`` of the wall clock an autoscaling decision (``decide``); a
scale-up takes free accelerators of the shape's flavor, else preempts preemptible running jobs
there (least attained first; the local backend gives them ``--grace-seconds`` to checkpoint);
a scale-down drains replicas and returns their accelerators to the training queue. Returns
the accelerators per flavor the replicas hold (bound replicas: the devices they hold, and
those of replicas waiting for a preempted job's devices). Not done yet: a replica started on
preempted accelerators does not wait for the victims' grace period.

Scale to zero and several models per device slot (``live_mux.py``): with
``serving.multiplex`` the cold services form the simulator's mux groups (``muxplan.groups_of``
over the same previous period), their engines share the groups' instances within the device
memory; a service with ``scale_to_zero:`` (or a member) is stopped when idle and woken by
requests the gateway's activator holds (``activity.py`` is where the two meet).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from computepool.model.pool import Pool
from computepool.serving import autoscaler as asc
from computepool.serving.activity import ActivatorBounds, Activity
from computepool.serving.binding import DevicePlacer, ServiceSlots, replica_keys
from computepool.serving.controller import SimulatedReplicas
from computepool.serving.emulator import replica_timing
from computepool.serving.engines.launch import engine_of, replica_launch, replica_values
from computepool.serving.hook import MonotonicClock, RoundCapacity, ServingHook
from computepool.serving.live import LiveAutoscaler
from computepool.serving.live_mux import (
    GroupSizer,
    MemberSlots,
    MuxDevices,
    activity_status,
    group_load,
    grow_member,
    spread,
    target,
)
from computepool.serving.mux import instance_bytes, load_seconds, member_bytes
from computepool.serving.muxplan import Candidate, candidate, groups_of
from computepool.serving.perf import Mix, capacity_rps, prefill_flops
from computepool.serving.service import ServiceSpec, ServingWorkload
from computepool.serving.supervisor import Runner, Supervisor


@dataclass
class LiveServiceState:
    spec: ServiceSpec
    flavor: int
    devices: float  # accelerators one replica holds (fraction for a packed one)
    shape: str
    supervisor: Supervisor
    autoscaler: LiveAutoscaler
    want: int
    preemptions: int = 0
    engine: str = "emulator"
    slots: ServiceSlots | None = None
    #: Replicas wanted but not started: no device slot free yet (a victim still stopping).
    pending: int = 0
    #: Scale to zero (``scale_to_zero:``, or a mux member): idle window and activator bounds.
    bounds: ActivatorBounds | None = None
    #: Its mux group (index into ``ProcessReplicas.groups``), what one replica reserves on
    #: the group's instance and its share of the instance's memory.
    group: int | None = None
    need_bytes: float = 0.0
    memory_fraction: float | None = None
    #: Replicas this round (the autoscaler's, scale to zero and wake-ups applied).
    target: int = 0
    #: Scaled to zero or evicted: no replica until a request is held for it.
    asleep: bool = False


def _mix(svc: ServiceSpec, prompt: np.ndarray, output: np.ndarray) -> Mix:
    if len(prompt) == 0:
        prompt, output = np.array([1000.0]), np.array([200.0])
    return Mix(
        float(prefill_flops(svc.model, prompt).mean()),
        float(output.mean()),
        float((prompt + output / 2).mean()),
    )


class LiveServingController(ServingHook):
    """The serving controller of the live pool: ``ServingHook`` over ``ProcessReplicas`` at
    the wall clock, deciding every ``interval_s``; the preemptible jobs are the round's
    workload's."""

    def __init__(
        self,
        pool: Pool,
        serving: ServingWorkload,
        log_dir: Path | None = None,
        start_delay_s: float | None = None,
    ) -> None:
        clock = MonotonicClock()
        driver = ProcessReplicas(pool, serving, log_dir, start_delay_s)
        interval = serving.config.interval_s
        super().__init__(driver, clock, interval, decide_every_s=interval)


class ProcessReplicas:
    """The live pool's replica driver (``hook.ReplicaDriver``): a ``Supervisor`` of replica
    processes per service, health-checked every round, scaled to what its ``LiveAutoscaler``
    (fed by the replicas' ``/metrics``) wants, bound to device slots once ``bind_placer``."""

    def __init__(
        self,
        pool: Pool,
        serving: ServingWorkload,
        log_dir: Path | None = None,
        start_delay_s: float | None = None,
    ) -> None:
        self.pool, self.cfg = pool, serving.config
        self.capacity = pool.capacity.astype(np.int64)
        self.states: list[LiveServiceState] = []
        self._stopped = False
        self._keys = replica_keys()
        self.activity = Activity([svc.name for svc in serving.services])
        # every decision at start is the simulator's own, from the previous period only
        # (``ServingWorkload.past_streams``): shape, warm-start size, mux groups
        sim = SimulatedReplicas(pool, serving, batched=False)
        first = sim.decide(0.0)
        n = len(serving.services)
        cands = [candidate(st, sim.past_horizon) for st in sim.states[:n]]
        #: Mux groups (the simulator's own, ``muxplan.mux_plans``, or ``groups_of`` over the
        #: same previous period where it builds none: not autoscaled) and their instances.
        plans = sim.mux_plans or groups_of(cands, pool, self.cfg)
        self.plans = plans if self.cfg.multiplex else []
        self.groups: list[MuxDevices] = []
        home = {}
        for gi, gp in enumerate(self.plans):
            acc = pool.flavor_accelerators[gp.flavor]
            budget = instance_bytes(acc.memory_gib, gp.tp, self.cfg.perf)
            self.groups.append(MuxDevices(None, gp.flavor, gp.tp, budget))
            home.update({i: (gi, r) for i, r in zip(gp.members, gp.rows, strict=True)})
        for i, st in enumerate(sim.states[:n]):
            warm = first.get(id(st)) if home.get(i) is None else None
            self.states.append(self._start(cands[i], warm, log_dir, start_delay_s, home.get(i)))
        #: Per group, its instance count on the members' total load (the simulator's group
        #: sizing, from the simulator's warm start); None where the simulator has no group
        #: state (not pooled and autoscaled): a new instance then only for a busy group.
        gstates = [g for g in sim.states[n:] if g.members]
        self.sizers: list[GroupSizer | None] = [None] * len(self.plans)
        if len(gstates) == len(self.plans):
            self.sizers = [GroupSizer.of(g, self.cfg, first.get(id(g))) for g in gstates]

    def _start(self, cand: Candidate, warm, log_dir, start_delay_s, home) -> LiveServiceState:
        """A service's supervisor and autoscaler; its shape is the simulator's first
        decision ``warm`` (need, floor, capacity per shape: its pre-warmed start from the
        previous period) ranked by the autoscaler's ``rank_shapes``; a member's is its group's
        instance row."""
        cfg, svc, shapes, mix = self.cfg, cand.spec, cand.shapes, cand.mix
        if mix.prefill_flops <= 0:  # no requests in the previous period: a typical one
            mix = _mix(svc, np.zeros(0), np.zeros(0))
        if warm is not None:
            need, _, cap = warm
        else:
            cap = capacity_rps(shapes, mix, svc.tbt_slo_s, cfg.target_utilization, cfg.perf)
            need = cand.rate
        ranked = asc.rank_shapes(
            cap, shapes.price_h, cand.usable, need, svc.min_replicas, svc.max_replicas
        )
        if home is None and len(ranked) == 0:
            raise ValueError(f"service {svc.name!r}: no usable replica shape in this pool")
        k = int(ranked[0]) if home is None else home[1]
        acc = self.pool.flavor_accelerators[int(shapes.flavor[k])].name
        tp, frac = int(shapes.tp[k]), float(shapes.frac[k])
        timing = replica_timing(svc.model.name, acc, tp, frac, svc.tbt_slo_s, cfg.perf,
                                svc.profile_map)  # fmt: skip
        bounds = svc.scale_to_zero
        if bounds is None and home is not None:  # a mux member goes to zero when idle
            bounds = ActivatorBounds(idle_s=max(cfg.keep_alive_s, 1.0))
        need = member_bytes(svc.model.weight_bytes, svc.model.kv_bytes_per_token, cfg.perf)
        accel = self.pool.accelerators[acc]
        share = None if home is None else round(need / (tp * accel.memory_gib * 1e9), 4)
        choice = svc.engine
        own = "--start-delay" in choice.args  # the services file's own delay wins
        if choice.engine == "emulator" and not own and (start_delay_s is not None or bounds):
            # woken replicas load their weights from host memory (ServerlessLLM)
            delay = start_delay_s
            if delay is None:
                delay = load_seconds(svc.model.weight_bytes, acc, tp, cfg.perf)
            choice = replace(choice, args=(*choice.args, "--start-delay", f"{delay:.3f}"))
        eng = engine_of(choice)
        extra = {"model": svc.model.name, "accelerator": acc, "frac": frac,
                 "tbt_slo": svc.tbt_slo_s, "memory_fraction": share}  # fmt: skip
        run_dir = log_dir if log_dir is not None else Path.cwd()

        def launch(r) -> tuple[list[str], dict[str, str]]:
            where = {"host": r.host, **({"python": r.python} if r.python else {})}
            values = replica_values(choice, svc.name, r.port, len(r.devices) or tp,
                                    {**extra, **where})  # fmt: skip
            return replica_launch(eng, values, r.devices, accel.visible_devices_env, run_dir)

        sup = Supervisor(
            name=svc.name, log_dir=log_dir, startup_s=timing.start_s + 60.0,
            ready_path=eng.ready_path, ports=eng.ports, metrics_port=eng.metrics_port,
            metrics_path=eng.metrics_path, launch=launch,
        )  # fmt: skip
        auto = LiveAutoscaler(
            sup, timing, mix, svc.tbt_slo_s, svc.min_replicas, svc.max_replicas, cfg,
            initial_need=float(svc.min_replicas) * float(cap[k]), metrics=eng.metrics,
        )  # fmt: skip
        st = LiveServiceState(svc, int(shapes.flavor[k]), float(shapes.devices[k]),
                              shapes.names[k], sup, auto, svc.min_replicas,
                              engine=choice.engine, bounds=bounds, need_bytes=need,
                              memory_fraction=share)  # fmt: skip
        st.asleep = bounds is not None and svc.min_replicas == 0  # starts at zero
        if home is not None:
            st.group = home[0]
            sup.slots = MemberSlots(self.groups[home[0]], svc.name, need)
        return st

    def bind_placer(self, placer: DevicePlacer) -> None:
        """Bind every replica started from now on to device slots of ``placer``."""
        for g in self.groups:
            g.placer, g.keys = placer, self._keys
        for s in self.states:
            if s.group is None:
                s.slots = ServiceSlots(placer, s.flavor, s.devices, self._keys)
                s.supervisor.slots = s.slots

    def bind_runner(self, make: Callable[[str, int, float, int], Runner]) -> None:
        """Run every replica started from now on through ``make(service, flavor, devices per
        replica, ports per replica)`` (the Ray backend: an actor on the node of its bound
        devices). Binds to device slots first (``bind_placer``): the slots name the node."""
        for s in self.states:
            # a mux member's engine asks Ray for its memory share of the instance's devices
            devices = s.devices if s.memory_fraction is None else s.devices * s.memory_fraction
            s.supervisor.runner = make(s.spec.name, s.flavor, devices, s.supervisor.ports)

    # ---- the driver (hook.ReplicaDriver) ---------------------------------------------
    def held(self) -> np.ndarray:
        whole = np.zeros(len(self.capacity))
        frac = np.zeros(len(self.capacity))
        for g in self.groups:
            whole[g.flavor] += g.held()
        for s in self.states:
            if s.group is not None:
                continue
            if s.slots is not None:
                whole[s.flavor] += s.slots.held() + s.pending * s.slots.size
                continue
            n = len(s.supervisor.replicas) + len(s.supervisor.stopping)
            (whole if s.devices >= 1 else frac)[s.flavor] += n * s.devices
        return whole + np.ceil(frac - 1e-9)

    @property
    def closed(self) -> bool:
        return self._stopped

    def advance(self, now: float) -> bool:
        """Health checks: a replica that died or stopped answering is restarted."""
        for s in self.states:
            s.supervisor.check()
        return True

    def decide(self, now: float) -> None:
        """Each service's autoscaler, from its replicas' metrics: the replicas wanted."""
        for s in self.states:
            s.want = max(s.autoscaler.tick(now, apply=False), s.spec.min_replicas)
        for gp, devs, sz in zip(self.plans, self.groups, self.sizers, strict=True):
            if sz is not None:  # a group is sized on its members' total load
                members = [self.states[i] for i in gp.members]
                load = group_load(members, self.activity, sz)
                sz.decide(now, *load, max(len(devs.instances), 1))

    def release(self, plans: None, now: float) -> None:
        """Scale-downs first: their accelerators return at once. An idle service that may go
        to zero stops now (nothing in flight: no drain). Stops never wait for a process: its
        slots stay held (``stopping``) until it is gone."""
        for s in self.states:
            s.target = target(s, self.activity)
        self._spread()
        for s in self.states:
            if s.target == 0 and s.supervisor.replicas:
                s.supervisor.stop(wait=False)
            elif s.target < len(s.supervisor.replicas):
                s.supervisor.scale_to(s.target)
        for s in self.states:  # replicas still waiting for a slot are reserved afresh
            s.pending = 0

    def _spread(self) -> None:
        """Awake members of a sized group run on their share of its instances."""
        for gp, sz in zip(self.plans, self.sizers, strict=True):
            if sz is None:
                continue
            awake = [self.states[i] for i in gp.members if self.states[i].target > 0]
            rates = [s.autoscaler.rate[-1] if s.autoscaler.rate else 0.0 for s in awake]
            for s, k in zip(awake, spread(sz.instances, rates), strict=True):
                s.target = k

    def grow(self, plans: None, ctx: RoundCapacity, now: float) -> None:
        by_name = {s.spec.name: s for s in self.states}
        for s in self.states:
            if s.group is not None:
                sz = self.sizers[s.group]
                want = None if sz is None else sz.instances
                grow_member(s, self.groups[s.group], by_name, self.activity, ctx, want)
                continue
            add = s.target - len(s.supervisor.replicas)
            for _ in range(max(add, 0)):
                n = len(s.supervisor.replicas) + s.pending
                # a packed replica may fit on a device already held
                need = (math.ceil((n + 1) * s.devices - 1e-9) - math.ceil(n * s.devices - 1e-9)
                        if s.devices < 1 else s.devices)  # fmt: skip
                if ctx.free[s.flavor] < need:
                    if not ctx.evict_for(s.flavor, need - ctx.free[s.flavor]):
                        break
                    s.preemptions += 1
                ctx.free[s.flavor] -= need
                if s.supervisor.start_one() is None:
                    # no device slot yet (a victim's, still stopping): held, started later
                    s.pending += 1

    def account(self, now: float, plans: None) -> None:
        pass

    # ---- endpoints and lifecycle -------------------------------------------------------
    def endpoints_of(self, name: str):
        state = next(s for s in self.states if s.spec.name == name)
        return state.supervisor.endpoints

    def starting(self, name: str) -> list[tuple[str, str]]:
        """(base URL, readiness URL) of the service's replicas started but not yet seen
        healthy (the activator probes them itself, as Knative's does)."""
        s = next((s for s in self.states if s.spec.name == name), None)
        if s is None:
            return []
        sup = s.supervisor
        return [(r.url, f"{r.url}{sup.ready_path}") for r in sup.starting()]

    def status(self) -> list[dict]:
        return [
            {
                "name": s.spec.name,
                "engine": s.engine,
                "shape": s.shape,
                "replicas": len(s.supervisor.replicas),
                "healthy": len(s.supervisor.endpoints()),
                "stopping": len(s.supervisor.stopping),
                "want": s.want,
                "restarts": sum(r.restarts for r in s.supervisor.replicas),
                "preemptions_caused": s.preemptions,
                **activity_status(s, self.activity, self.plans),
                "group_instances": None
                if s.group is None or self.sizers[s.group] is None
                else self.sizers[s.group].instances,
                "devices": [
                    {"node": self.pool.nodes[r.node].name, "devices": list(r.devices)}
                    for r in s.supervisor.replicas
                    if r.node >= 0
                ],
            }
            for s in self.states
        ]

    def stop(self) -> None:
        self._stopped = True
        for s in self.states:  # every replica told first, then waited for
            s.supervisor.stop(wait=False)
        for s in self.states:
            s.supervisor.reap_stopping(wait=True)
