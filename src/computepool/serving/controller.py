"""ServingController: the services' side of the simulated round (``Scheduler(serving=...)``).

The one serving controller (``hook.ServingHook``) with the simulator's replica driver
``SimulatedReplicas`` and the Scheduler's time (``hook.SchedulerClock``) injected; the live
pool's is the same hook over ``live_pool.ProcessReplicas``. Each round, before the training
policy runs, ``reserve(inp)`` (the hook's steps: advance, decide, release, grow, account):

1. replays the requests that arrived since the last round on the replicas that were up
   (``replay.ServiceReplay``), which gives what replicas report: rate, mix, backlog;
2. asks the autoscaler for the capacity each service needs (forecast + backlog; scale-down only
   after ``scale_down_delay_s``) and the shapes ranked by price-performance;
3. releases surplus replicas (their cards go back to the training queue), then adds replicas
   where short: on free accelerators first, else by preempting *preemptible* training jobs on
   the flavor (least attained service first); a replica that needed a preemption starts after
   the victims' ``grace_s`` to checkpoint, every replica after its load time;
4. returns the accelerators per flavor the services hold and the rows to preempt. The
   Scheduler gives the training policy only what is left.

``mode="dedicated"`` sizes each service once for its peak on whole devices and holds them.
Every decision looks at the past only: sizing once and the pooled warm start use the previous
period (``ServingWorkload.past_streams``), rounds use the requests that have arrived.
``multiplex`` puts the rarely used services into mux groups (``muxplan.py``, ``mux.py``): a
group is scaled like a service on its members' merged requests, the members hold nothing.
``disaggregate`` prefills the services' prompts in prefill pools (``disagg.py``) and leaves
their replicas (or groups) the decode; ``burst_sizing: replay`` sizes groups and pools from a
replay of their recent prompts (``sizing.py``).
Plain services are replayed and measured together (``replay_batch.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from computepool.model.pool import Pool
from computepool.model.status import Status
from computepool.serving import autoscaler as asc
from computepool.serving import disagg
from computepool.serving.feasibility import service_status
from computepool.serving.hook import RoundCapacity, SchedulerClock, ServingHook
from computepool.serving.packing import extra_devices
from computepool.serving.perf import Mix, build_shapes, capacity_rps, prefill_flops
from computepool.serving.replay import Group, ServiceReplay
from computepool.serving.replay_batch import ReplayBatch
from computepool.serving.service import ServiceSpec, ServingWorkload
from computepool.serving.sizing import past_needs, queue_factor, slo_need, with_history
from computepool.serving.state import ServiceState


@dataclass
class ServingRecord:
    """Per-round records (the state after each ``reserve``)."""

    t: list[float] = field(default_factory=list)
    held: list[np.ndarray] = field(default_factory=list)  # (F,) accelerators held
    devices: list[np.ndarray] = field(default_factory=list)  # (S,) accelerators per service
    replicas: list[np.ndarray] = field(default_factory=list)  # (S,)
    need: list[np.ndarray] = field(default_factory=list)  # (S,) req/s provisioned for


class ServingController(ServingHook):
    """The serving controller of the simulator: ``ServingHook`` over ``SimulatedReplicas``
    at the Scheduler's time, deciding every round."""

    def __init__(
        self,
        pool: Pool,
        serving: ServingWorkload,
        preemptible: np.ndarray | None = None,
        start: float = 0.0,
        batched: bool = True,
    ) -> None:
        driver = SimulatedReplicas(pool, serving, start, batched)
        super().__init__(
            driver, SchedulerClock(), serving.config.interval_s, preemptible=preemptible
        )


class SimulatedReplicas:
    """The simulator's replica driver (``hook.ReplicaDriver``): replicas are groups of a
    shape per service, replaying the requests that arrive (``replay.py``, ``replay_batch.py``)."""

    def __init__(
        self, pool: Pool, serving: ServingWorkload, start: float = 0.0, batched: bool = True
    ) -> None:
        self.pool, self.serving, self.cfg = pool, serving, serving.config
        self.horizon = serving.horizon_s
        self.capacity = pool.capacity.astype(np.int64)
        F = len(pool.flavors)
        self.whole = np.zeros(F)
        self.frac = np.zeros(F)
        self.record = ServingRecord()
        self._t = start
        self._first = True
        self._closed = False
        self._plans: dict = {}
        self.past_horizon = self._past_horizon()
        past = serving.past_streams(self.past_horizon)
        if serving.past is not None:  # given: a period as long as this run
            self.past_horizon = self.horizon
        self.states = [
            self._state(s, st, ps)
            for s, st, ps in zip(serving.services, serving.streams, past, strict=True)
        ]
        pooled = self.cfg.mode == "pooled" and self.cfg.autoscale
        pools: dict = {}
        if self.cfg.disaggregate and pooled:  # prompts go to prefill pools (disagg.py)
            pools = disagg.plan(self)
            for idx in pools.values():
                for i in idx:
                    self.states[i] = disagg.decode_side(self, self.states[i])
        #: The mux groups (``muxplan.mux_plans``); the live controller reads them too.
        self.mux_plans: list = []
        if self.cfg.multiplex and pooled:
            from computepool.serving.muxplan import group_states, mux_plans

            self.mux_plans = mux_plans(self)
            self.states += group_states(self, self.mux_plans)
        if pools:
            self.states += disagg.pool_states(self, pools)
        # plain services are replayed together (replay_batch.py); mux groups one by one
        self._batched = [
            s
            for s in self.states
            if batched
            and s.status.ok
            and s.member_of is None
            and not s.members
            and not s.prefill_for
        ]
        self._batched_ids = {id(s) for s in self._batched}
        self._batch = ReplayBatch([s.replay for s in self._batched]) if self._batched else None

    def _past_horizon(self) -> float:
        """How much of the previous period the decisions need: all of it when sizing once
        for its peak, else an hour (mix, p99 prompt) or the horizon if shorter."""
        cfg = self.cfg
        if cfg.mode == "dedicated" or not cfg.autoscale:
            return self.horizon
        return min(self.horizon, 3600.0)

    # ---- set-up --------------------------------------------------------------------
    def _state(self, svc: ServiceSpec, stream, past_stream) -> ServiceState:
        cfg = self.cfg
        packing = cfg.packing and cfg.mode == "pooled"
        shapes = build_shapes(
            svc.model,
            self.pool,
            svc.accelerators,
            cfg.perf,
            packing=packing,
            profiles=svc.profile_map,
            regions=svc.regions,
        )
        flops = prefill_flops(svc.model, stream.prompt)
        # decisions see the previous period only, never this run's requests ahead of time
        past_flops = prefill_flops(svc.model, past_stream.prompt)
        p99_prompt = float(np.percentile(past_stream.prompt, 99)) if len(past_stream) else 0.0
        p99_flops = float(prefill_flops(svc.model, np.array([p99_prompt]))[0])
        usable = asc.usable_shapes(shapes, svc, p99_flops, cfg)
        if cfg.flavor_choice == "first" and svc.accelerators:
            names = [self.pool.flavor_accelerators[f].name for f in shapes.flavor]
            for acc in svc.accelerators:
                m = usable & np.array([n == acc for n in names], dtype=bool)
                if m.any():
                    usable = m
                    break
        status = service_status(svc, self.pool, shapes, usable, p99_prompt, p99_flops, cfg)
        past = ServiceReplay(
            past_stream, past_flops, shapes, svc.tbt_slo_s, cfg.perf, cfg.bin_s, cfg.decode_window_s
        )
        replay = ServiceReplay(
            stream, flops, shapes, svc.tbt_slo_s, cfg.perf, cfg.bin_s, cfg.decode_window_s,
            prior=past.mean_mix(),
        )  # fmt: skip
        return ServiceState(svc, shapes, usable, replay, status, past)

    @property
    def rejections(self) -> dict[str, Status]:
        return {s.spec.name: s.status for s in self.states if not s.status.ok}

    # ---- the driver (hook.ReplicaDriver) ---------------------------------------------
    def held(self) -> np.ndarray:
        """Accelerators per flavor held by services (packed devices counted whole)."""
        return self.whole + np.ceil(self.frac - 1e-9)

    @property
    def closed(self) -> bool:
        return self._closed

    def advance(self, now: float) -> bool:
        """Replay what arrived since the last round on the replicas that were up; past the
        horizon, drain and close (False)."""
        self._advance(min(now, self.horizon))
        if now >= self.horizon:
            self._close()
            return False
        return True

    @property
    def _autoscaled(self) -> bool:
        return self.cfg.mode == "pooled" and self.cfg.autoscale

    def _live(self) -> list[ServiceState]:
        return [s for s in self.states if s.status.ok and s.member_of is None]

    def decide(self, now: float) -> dict:
        """Per service: (capacity needed, scale-down floor, replica capacity per shape);
        sized once (dedicated, or not autoscaled): the first round's plan, kept."""
        if self._first or self._autoscaled:
            seen = self._observe_batched(now) if self._autoscaled and not self._first else {}
            self._plans = {id(s): self._needs(s, now, seen.get(id(s))) for s in self._live()}
        return self._plans

    def release(self, plans: dict, now: float) -> None:
        if not self._first and self._autoscaled:
            for s in self._live():
                self._scale_down(s, plans[id(s)], now)

    def grow(self, plans: dict, ctx: RoundCapacity, now: float) -> None:
        live = self._live()
        if self._first:
            for s in live:
                self._scale_up(s, plans[id(s)], ctx, now, warm=True)
            self._first = False
        elif self._autoscaled:
            order = sorted(live, key=lambda s: -_deficit(s, plans[id(s)]))
            for s in order:
                self._scale_up(s, plans[id(s)], ctx, now, warm=False)

    def account(self, now: float, plans: dict) -> None:
        self._record(now, plans)

    # ---- per service ----------------------------------------------------------------
    def _observe_batched(self, now: float) -> dict[int, tuple[float, Mix, np.ndarray]]:
        """What ``_needs`` measures (rate incl. bursts, mix, capacity per shape) for the
        batched services at once (``ReplayBatch.observe``)."""
        if self._batch is None:
            return {}
        cfg = self.cfg
        ttft = np.array([s.spec.ttft_slo_s for s in self._batched])
        rate, mixes, burst = self._batch.observe(
            now, cfg.window_s, cfg.burst_window_s, cfg.peak_window_s, ttft
        )
        caps = self._batch.capacity(mixes, cfg.target_utilization)
        out = {}
        for k, st in enumerate(self._batched):
            mix = mixes[k]
            b = burst[k] * queue_factor(cfg, st.spec.ttft_slo_s)
            r = max(float(rate[k]), b / max(mix.prefill_flops, 1.0) * cfg.target_utilization)
            out[id(st)] = (r, mix, caps[k])
        return out

    def _needs(
        self, s: ServiceState, now: float, seen: tuple[float, Mix, np.ndarray] | None = None
    ) -> tuple[float, float, np.ndarray]:
        """(capacity needed, scale-down floor, replica capacity per shape), req/s; ``seen``:
        the measurements already taken by ``_observe_batched``."""
        cfg = self.cfg
        if seen is not None:
            rate, mix, cap = seen
            return self._decide(s, now, rate, mix, cap, 0.0)
        rate, mix = s.replay.load(now, cfg.window_s, cfg.burst_window_s)
        if self._first or cfg.mode == "dedicated" or not cfg.autoscale:
            if self._first and cfg.mode == "pooled" and cfg.autoscale:
                # pre-warmed: as if it had run before, sized for the previous period's last
                # peak window (never this run's first minutes: they have not arrived yet)
                end = self.past_horizon
                rate, mix = s.past.load(end, cfg.peak_window_s, cfg.burst_window_s)
            else:
                rate, mix = self._peak(s)
        if s.members or s.prefill_for:  # a mux group or prefill pool: at its members' activity
            src, at = (s.past, self.past_horizon) if self._first else (s.replay, now)
            cap, mem_floor = src.sizing(
                at, s.replicas, mix, s.spec.tbt_slo_s, cfg.target_utilization
            )
        else:
            cap = capacity_rps(s.shapes, mix, s.spec.tbt_slo_s, cfg.target_utilization, cfg.perf)
            mem_floor = 0.0
        if (s.members or s.prefill_for) and cfg.burst_sizing == "replay" and cfg.autoscale:
            rate = max(self._slo_sized(s, now, mix, float(cap[0])), self._mean_rate(s, now))
        else:
            rate = max(rate, self._burst(s, now, mix))
        return self._decide(s, now, rate, mix, cap, mem_floor)

    def _mean_rate(self, s: ServiceState, now: float) -> float:
        src, at = (s.past, self.past_horizon) if self._first else (s.replay, now)
        return src.load(at, self.cfg.window_s)[0]

    def _slo_sized(self, s: ServiceState, now: float, mix: Mix, cap1: float) -> float:
        src, at = (s.past, self.past_horizon) if self._first else (s.replay, now)
        cfg = self.cfg
        need = slo_need(src.stream.t, src.flops, at, mix, cap1, s.spec.ttft_slo_s, cfg)
        if not np.isfinite(need):
            return self._burst(s, now, mix)
        if cfg.sizing_history_s > 0:
            if self._first:  # the previous period's needs, one per half lookback
                s.slo_hist += past_needs(src, at, now, mix, cap1, s.spec.ttft_slo_s, cfg)
            need = with_history(s.slo_hist, now, need, cfg.sizing_history_s,
                                cfg.sizing_history_quantile)  # fmt: skip
        return need

    def _decide(
        self, s: ServiceState, now: float, rate: float, mix: Mix, cap: np.ndarray, floor0: float
    ) -> tuple[float, float, np.ndarray]:
        replayed = bool(s.members or s.prefill_for) and self.cfg.burst_sizing == "replay"
        need, floor = asc.plan_need(s.hist_t, s.hist_rate, s.hist_need, now, rate, s.replay.backlog,
                                    mix, floor0, self.cfg, replayed, bool(s.prefill_for))  # fmt: skip
        return need, floor, cap

    def _burst(self, s: ServiceState, now: float, mix: Mix) -> float:
        """Rate (at the target utilisation) that prefills what arrived within any TTFT-SLO
        window of the last ``peak_window_s`` (whole horizon when sizing once) in that window."""
        cfg = self.cfg
        autoscaled = cfg.mode == "pooled" and cfg.autoscale
        if autoscaled and not self._first:
            flops = s.replay.burst_flops_rate(now - cfg.peak_window_s, now, s.spec.ttft_slo_s)
        elif autoscaled:  # pre-warmed start: the previous period's last peak window
            end = self.past_horizon
            flops = s.past.burst_flops_rate(end - cfg.peak_window_s, end, s.spec.ttft_slo_s)
        else:  # sized once for the previous period's peak
            flops = s.past.burst_flops_rate(0.0, self.past_horizon, s.spec.ttft_slo_s)
        flops *= queue_factor(cfg, s.spec.ttft_slo_s)
        return flops / max(mix.prefill_flops, 1.0) * cfg.target_utilization

    def _peak(self, s: ServiceState) -> tuple[float, Mix]:
        """Highest rate over any ``window_s`` window of the previous period, and its mix."""
        cfg = self.cfg
        win = cfg.burst_window_s or cfg.window_s
        end = self.past_horizon
        starts = np.arange(0.0, max(end - win, 0.0) + 1e-9, min(win, cfg.interval_s))
        w = s.past.window(starts, starts + win)
        n = float(w["n"].max()) if len(starts) else 0.0
        return n / win, s.past.mean_mix()

    def _cap_have(self, s: ServiceState, cap: np.ndarray) -> float:
        return float(sum(g.count * cap[g.shape] for g in s.groups))

    def _scale_down(self, s: ServiceState, plan, now: float) -> None:
        """Release replicas not needed for ``scale_down_delay_s``, least cost-efficient first;
        a ready replica goes only if the *ready* ones left still carry the need."""
        _, floor, cap = plan
        if s.replicas <= s.spec.min_replicas:
            return
        have = self._cap_have(s, cap)
        if have - min(cap[g.shape] for g in s.groups) < floor:
            return  # not even the smallest replica can go (the loop below would stop at once)
        ready = float(sum(g.count * cap[g.shape] for g in s.groups if g.ready_at <= now))
        eff = {g.shape: s.shapes.price_h[g.shape] / max(cap[g.shape], 1e-9) for g in s.groups}
        for g in sorted(s.groups, key=lambda g: (-eff[g.shape], -g.ready_at)):
            up = g.ready_at <= now
            while g.count > 0 and s.replicas > s.spec.min_replicas:
                c = cap[g.shape]
                if have - c < floor or (up and ready - c < floor):
                    break
                have -= c
                ready -= c if up else 0.0
                g = self._remove_one(s, g)

    def _remove_one(self, s: ServiceState, g: Group) -> Group:
        f, fr = int(s.shapes.flavor[g.shape]), float(s.shapes.frac[g.shape])
        if fr < 1.0:
            self.frac[f] -= fr
        else:
            self.whole[f] -= s.shapes.tp[g.shape]
        i = s.groups.index(g)
        new = replace(g, count=g.count - 1)
        if new.count:
            s.groups[i] = new
        else:
            s.groups.pop(i)
        return new

    def _scale_up(self, s: ServiceState, plan, ctx: RoundCapacity, now: float, warm: bool) -> None:
        need, _, cap = plan
        have = self._cap_have(s, cap)
        sp = s.spec
        ranked = None  # ranked only when a replica is wanted (most rounds add none)
        stopped = False
        while s.replicas < sp.max_replicas and (have < need or s.replicas < sp.min_replicas):
            if ranked is None:
                ranked = asc.rank_shapes(
                    cap, s.shapes.price_h, s.usable, need, sp.min_replicas, sp.max_replicas
                )
            for k in ranked:
                delay = self._take(s, int(k), ctx)
                if delay is not None:
                    ready = -np.inf if warm else now + delay + float(s.shapes.start_s[k])
                    self._add(s, int(k), ready)
                    have += cap[k]
                    break
            else:
                stopped = True
                break
        if stopped or (have < need and s.replicas >= sp.max_replicas):
            s.capped += 1

    def _take(self, s: ServiceState, k: int, ctx: RoundCapacity) -> float | None:
        """Find accelerators for one replica of shape k: None, or the start delay (grace)."""
        f = int(s.shapes.flavor[k])
        fr = float(s.shapes.frac[k])
        want = extra_devices(self.frac[f], fr) if fr < 1.0 else int(s.shapes.tp[k])
        idle = ctx.free[f] - ctx.freed[f]  # free without waiting for a checkpoint
        if idle >= want:
            ctx.free[f] -= want
            return 0.0
        if ctx.free[f] < want:
            if not ctx.evict_for(f, want - ctx.free[f]):
                return None
            s.preemptions += 1
        # part of it comes from jobs preempted this round: usable after their grace period
        take_idle = max(idle, 0.0)
        ctx.freed[f] -= want - take_idle
        ctx.free[f] -= want
        return self.cfg.grace_s

    def _add(self, s: ServiceState, k: int, ready: float) -> None:
        f, fr = int(s.shapes.flavor[k]), float(s.shapes.frac[k])
        if fr < 1.0:
            self.frac[f] += fr
        else:
            self.whole[f] += s.shapes.tp[k]
        for i, g in enumerate(s.groups):
            if g.shape == k and g.ready_at == ready:
                s.groups[i] = replace(g, count=g.count + 1)
                return
        s.groups.append(Group(k, 1, ready))

    # ---- time --------------------------------------------------------------------
    def _advance(self, now: float) -> None:
        if now <= self._t:
            return
        if self._batch is not None:
            self._batch.advance(self._t, now, [s.groups for s in self._batched])
        for s in self.states:
            if not s.status.ok or s.member_of is not None:
                continue
            if id(s) not in self._batched_ids:
                s.replay.advance(self._t, now, s.groups)
            for g in s.groups:
                d = g.count * float(s.shapes.devices[g.shape]) * (now - self._t)
                s.shape_seconds[g.shape] = s.shape_seconds.get(g.shape, 0.0) + d
            s.groups = _merge_ready(s.groups, now)
        self._t = now

    def _close(self) -> None:
        if self._closed:
            return
        end = self.horizon + 600.0  # requests still queued drain on what is up
        if self._batch is not None:
            self._batch.advance(self.horizon, end, [s.groups for s in self._batched])
            self._batch.close()
        for s in self.states:
            if s.status.ok and s.member_of is None and id(s) not in self._batched_ids:
                s.replay.advance(self.horizon, end, s.groups)
            s.replay.close()
            s.groups = []
        for g in self.states:
            if g.members:  # members' requests were replayed in their group
                member, pos = g.member_pos
                for j, i in enumerate(g.members):
                    m = member == j
                    self.states[i].replay.ttft[pos[m]] = g.replay.ttft[m]
                    self.states[i].replay.tbt[pos[m]] = g.replay.tbt[m]
        for p in self.states:
            if p.prefill_for:  # prompts were prefilled in a pool, decoded on the service
                disagg.first_tokens(self, p)
        self.whole[:] = 0
        self.frac[:] = 0
        self._record(self.horizon, {})
        self._closed = True

    def _record(self, now: float, plans: dict) -> None:
        r = self.record
        r.t.append(now)
        r.held.append(self.held())
        r.devices.append(np.array([s.devices() for s in self.states]))
        r.replicas.append(np.array([s.replicas for s in self.states]))
        r.need.append(np.array([plans[id(s)][0] if id(s) in plans else 0.0 for s in self.states]))


def _deficit(s: ServiceState, plan) -> float:
    need, _, cap = plan
    have = sum(g.count * cap[g.shape] for g in s.groups)
    return (need - have) / max(need, 1e-9)


def _merge_ready(groups: list[Group], now: float) -> list[Group]:
    ready: dict[int, int] = {}
    rest = []
    for g in groups:
        if g.ready_at <= now:
            ready[g.shape] = ready.get(g.shape, 0) + g.count
        else:
            rest.append(g)
    return [Group(k, n, -np.inf) for k, n in ready.items()] + rest
