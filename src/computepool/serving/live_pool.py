"""LiveServingController: services on the live pool (``cpool serve --services FILE``).

The same serving controller as the simulator's (``hook.ServingHook``, the ``Scheduler``'s
``serving`` hook) with the live replica driver ``ProcessReplicas`` and the wall clock
(``hook.MonotonicClock``) injected. Per service the driver runs a ``Supervisor`` of replica processes of the
service's engine (``engines/``: the EMULATED replica by default, or vLLM, SGLang, MindIE,
llama.cpp, any OpenAI-compatible command; health-checked with the engine's readiness probe and
restarted every round) and a ``LiveAutoscaler`` fed by their ``/metrics`` through the
engine's metrics adapter. With ``bind_placer(placer)`` (the live pool's slot assigner or
placement engine) each replica is bound to concrete devices of a node, given to it in its
vendor's variable (``CUDA_VISIBLE_DEVICES``, ``ASCEND_RT_VISIBLE_DEVICES``, ...). The replica shape is chosen once, at start, by
price-performance at the service's trace mix (the simulator re-chooses per scale-up).

Each round ``reserve(inp)`` (``ServingHook``'s steps): health checks (``advance``); every
``interval_s`` of the wall clock an autoscaling decision (``decide``); a
scale-up takes free accelerators of the shape's flavor, else preempts preemptible running jobs
there (least attained first; the local backend gives them ``--grace-seconds`` to checkpoint);
a scale-down drains replicas and returns their accelerators to the training queue. Returns
the accelerators per flavor the replicas hold (bound replicas: the devices they hold, and
those of replicas waiting for a preempted job's devices). Not done yet: a replica started on
preempted accelerators does not wait for the victims' grace period.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from computepool.model.pool import Pool
from computepool.serving import autoscaler as asc
from computepool.serving.binding import DevicePlacer, ServiceSlots, replica_keys
from computepool.serving.emulator import replica_timing
from computepool.serving.engines.launch import engine_of, replica_launch, replica_values
from computepool.serving.hook import MonotonicClock, RoundCapacity, ServingHook
from computepool.serving.live import LiveAutoscaler
from computepool.serving.perf import Mix, build_shapes, capacity_rps, prefill_flops
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
        for svc, stream in zip(serving.services, serving.streams, strict=True):
            self.states.append(self._start(svc, stream, log_dir, start_delay_s))

    def _start(self, svc, stream, log_dir, start_delay_s) -> LiveServiceState:
        cfg = self.cfg
        # measured profiles (a real engine's own speed) replace the derived numbers
        shapes = build_shapes(svc.model, self.pool, svc.accelerators, cfg.perf,
                              packing=cfg.packing, regions=svc.regions,
                              profiles=svc.profile_map)  # fmt: skip
        mix = _mix(svc, stream.prompt, stream.output)
        p99 = float(np.percentile(stream.prompt, 99)) if len(stream) else 4096.0
        usable = asc.usable_shapes(shapes, svc, float(prefill_flops(svc.model, [p99])[0]), cfg)
        cap = capacity_rps(shapes, mix, svc.tbt_slo_s, cfg.target_utilization, cfg.perf)
        rate = len(stream) / max(float(stream.t.max()), 1.0) if len(stream) else 0.0
        ranked = asc.rank_shapes(
            cap, shapes.price_h, usable, rate, svc.min_replicas, svc.max_replicas
        )
        if len(ranked) == 0:
            raise ValueError(f"service {svc.name!r}: no usable replica shape in this pool")
        k = int(ranked[0])
        acc = self.pool.flavor_accelerators[int(shapes.flavor[k])].name
        tp, frac = int(shapes.tp[k]), float(shapes.frac[k])
        timing = replica_timing(svc.model.name, acc, tp, frac, svc.tbt_slo_s, cfg.perf,
                                svc.profile_map)  # fmt: skip
        choice = svc.engine
        if start_delay_s is not None and choice.engine == "emulator":
            choice = replace(choice, args=(*choice.args, "--start-delay", str(start_delay_s)))
        eng = engine_of(choice)
        extra = {"model": svc.model.name, "accelerator": acc, "frac": frac,
                 "tbt_slo": svc.tbt_slo_s}  # fmt: skip
        accel = self.pool.accelerators[acc]
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
        return LiveServiceState(svc, int(shapes.flavor[k]), float(shapes.devices[k]),
                                shapes.names[k], sup, auto, svc.min_replicas,
                                engine=choice.engine)  # fmt: skip

    def bind_placer(self, placer: DevicePlacer) -> None:
        """Bind every replica started from now on to device slots of ``placer``."""
        for s in self.states:
            s.slots = ServiceSlots(placer, s.flavor, s.devices, self._keys)
            s.supervisor.slots = s.slots

    def bind_runner(self, make: Callable[[str, int, float, int], Runner]) -> None:
        """Run every replica started from now on through ``make(service, flavor, devices per
        replica, ports per replica)`` (the Ray backend: an actor on the node of its bound
        devices). Binds to device slots first (``bind_placer``): the slots name the node."""
        for s in self.states:
            s.supervisor.runner = make(s.spec.name, s.flavor, s.devices, s.supervisor.ports)

    # ---- the driver (hook.ReplicaDriver) ---------------------------------------------
    def held(self) -> np.ndarray:
        whole = np.zeros(len(self.capacity))
        frac = np.zeros(len(self.capacity))
        for s in self.states:
            if s.slots is not None:
                whole[s.flavor] += s.slots.held() + s.pending * s.slots.size
                continue
            n = len(s.supervisor.replicas)
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

    def release(self, plans: None, now: float) -> None:
        """Scale-downs first: their accelerators return at once."""
        for s in self.states:
            if s.want < len(s.supervisor.replicas):
                s.supervisor.scale_to(max(s.want, s.spec.min_replicas))
        for s in self.states:  # replicas still waiting for a slot are reserved afresh
            s.pending = 0

    def grow(self, plans: None, ctx: RoundCapacity, now: float) -> None:
        for s in self.states:
            add = s.want - len(s.supervisor.replicas)
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

    def status(self) -> list[dict]:
        return [
            {
                "name": s.spec.name,
                "engine": s.engine,
                "shape": s.shape,
                "replicas": len(s.supervisor.replicas),
                "healthy": len(s.supervisor.endpoints()),
                "want": s.want,
                "restarts": sum(r.restarts for r in s.supervisor.replicas),
                "preemptions_caused": s.preemptions,
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
        for s in self.states:
            s.supervisor.stop()
