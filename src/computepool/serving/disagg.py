"""Prefill/decode disaggregation with prefill pools shared across models (``serving.disaggregate``).

Published designs, and what this model takes from each:

* **DistServe** (OSDI'24) and **Splitwise** (ISCA'24): prefill and decode run on different
  instances, so prompts no longer steal decode steps (the TBT of a decode instance is its own
  step time) and each phase is sized for its own SLO (prefill for TTFT, decode for TBT and KV
  memory) on the card that suits it (Splitwise: compute-rich cards prefill, bandwidth- and
  memory-rich ones decode). The prompt's KV cache moves from the prefill to the decode
  instance: ``rtt + kv_bytes / bandwidth`` between their regions (``catalog/data/network.yaml``:
  400 Gbit/s within a region, 100 Gbit/s within a jurisdiction), added to the request's time to
  first token (pessimistic: DistServe returns the first token from the prefill instance).
* **Aegaeon** (SOSP'25): a prefill instance serves *any* model, switching at request
  granularity; so a prefill pool serves the prompts of every model whose cheapest prefill card
  is its flavor, and a model whose weights are not resident loads them first
  (``switch_s + W / host link``, ``mux.load_seconds``; queued as pool work). Weights of the
  models prefilled within ``prefill_keep_alive_s`` stay resident (spread over the instances:
  the pool's memory floor). Prefill instances are autoscaled on the pool's merged prompts (their
  bursts are smoothed by pooling across models, the point of the design); decode instances
  (each service's replicas, or its mux group) on decode load.

What it assumes: prompts of a pool are served first come first served (every service here has
the same TTFT SLO, where earliest-deadline-first is the same order); a request's first token
needs both its prompt prefilled and its decode side ready (a cold decode member loading its
weights in parallel), so its TTFT is the later of the two, plus the KV transfer; the KV links
are not a shared bottleneck (their mean load is reported, not queued); a prefill instance holds
the weights of the models it prefills and nothing else (no KV kept after the transfer).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from computepool.model.pool import Pool
from computepool.model.status import Status
from computepool.serving.autoscaler import usable_shapes
from computepool.serving.mux import (
    Members,
    MuxReplay,
    cold_flags,
    load_seconds,
    merge,
    weights_floor,
)
from computepool.serving.perf import Mix, PerfAssumptions, ShapeTable, capacity_rps, prefill_flops
from computepool.serving.replay import ServiceReplay
from computepool.serving.service import ServiceSpec
from computepool.serving.state import ServiceState

if TYPE_CHECKING:
    from computepool.serving.controller import SimulatedReplicas

#: Prefill FLOP/s of a decode-only replica: prompts are not its work (they run in a pool).
DECODE_ONLY_FLOPS = 1e24
#: KV tokens of a prefill-only instance: no sequence stays on it after its prompt.
PREFILL_KV = 1e18
#: At most this many instances per prefill pool.
MAX_POOL_REPLICAS = 256
#: A prefill instance keeps this share of its biggest model's weight bytes free (activations).
ROOM = 0.5


def decode_only(shapes: ShapeTable) -> ShapeTable:
    """The shapes of a service whose prompts are prefilled elsewhere."""
    return replace(shapes, flops=np.full(len(shapes), DECODE_ONLY_FLOPS))


def prefill_only(shapes: ShapeTable, perf: PerfAssumptions) -> ShapeTable:
    """The shapes as prefill instances: one engine step's overhead, no decode, no KV kept."""
    n = len(shapes)
    return replace(
        shapes,
        a=np.full(n, perf.step_overhead_s),
        kvr=np.zeros(n),
        c=np.zeros(n),
        kv_cap=np.full(n, PREFILL_KV),
        start_s=np.full(n, perf.start_s),  # an empty engine: models load on demand
    )


def kv_transfer_s(kv_bytes: np.ndarray, pool: Pool, a: str, b: str) -> np.ndarray:
    """Seconds to move ``kv_bytes`` from region ``a`` to ``b`` (one round trip + the bytes over
    the catalogued link between them)."""
    key = (a, b) if a <= b else (b, a)
    gbps = float(pool.bandwidth_gbps.get(key) or 0.0) or 10.0
    return pool.rtt(a, b) / 1e3 + np.asarray(kv_bytes) * 8.0 / (gbps * 1e9)


@dataclass
class PrefillReplay(MuxReplay):
    """A prefill pool's replay: ``ServiceReplay``'s FIFO queue over the merged prompts of its
    services (work = prefill FLOPs, plus the weight load when the model is not resident) on
    prefill-only instances, and the memory floor of the resident weights."""

    _bins = ServiceReplay._bins

    def floor_replicas(self, now: float) -> int:
        """Instances needed to hold the weights of the models prefilled within
        ``keep_alive_s`` (copies of the busy ones included) with a fifth of memory to spare."""
        res = self.active(np.array([now]), self.keep_alive_s)[:, 0]
        w = float(self.members.weight_bytes[res].sum())
        return weights_floor(w, self.members, self.busy(now), self.mem_bytes)

    def sizing(
        self, now: float, replicas: int, mix: Mix, tbt_slo: float, util: float
    ) -> tuple[np.ndarray, float]:
        """(requests per second one prefill instance carries, the capacity the pool needs
        whatever its rate: ``floor_replicas`` instances), as ``MuxReplay.sizing``."""
        cap = capacity_rps(self.shapes, mix, tbt_slo, util, self.perf)
        return cap, self.floor_replicas(now) * float(cap[0])


def _prefill_flavor(s: ServiceState) -> int | None:
    """The flavor with the cheapest prefill FLOP/s among the service's whole-device shapes
    that meet its SLOs."""
    sh = s.shapes
    ok = s.usable & (sh.frac >= 1.0)
    if not ok.any():
        return None
    idx = np.nonzero(ok)[0]
    return int(sh.flavor[idx[np.argmax(sh.flops[idx] / sh.price_h[idx])]])


def _busy(s: ServiceState, f: int, fraction: float, past_horizon: float) -> bool:
    """The service's previous-period prompts would keep ``fraction`` of one device of flavor
    ``f`` busy (the rest keep prefilling where they decode: their weights are there)."""
    sh = s.shapes
    rows = np.nonzero((sh.flavor == f) & (sh.frac >= 1.0))[0]
    per_device = float(np.max(sh.flops[rows] / sh.tp[rows]))
    work = float(prefill_flops(s.spec.model, s.past.stream.prompt).sum())
    return work / max(past_horizon, 1e-9) >= fraction * per_device


def plan(ctl: SimulatedReplicas) -> dict[tuple[int, int, float], list[int]]:
    """Prefill pools: (flavor, tp, TTFT SLO) -> the services whose prompts it serves (each
    on the flavor with its cheapest prefill FLOP/s; tp: the smallest that holds the biggest
    member's weights with ``ROOM`` to spare)."""
    from computepool.serving.muxplan import instance_tp

    by_key: dict[tuple[int, float], list[int]] = defaultdict(list)
    for i, s in enumerate(ctl.states):
        if s.status.ok:
            f = _prefill_flavor(s)
            if f is not None and _busy(s, f, ctl.cfg.prefill_fraction, ctl.past_horizon):
                by_key[(f, s.spec.ttft_slo_s)].append(i)
    out: dict[tuple[int, int, float], list[int]] = {}
    for (f, ttft), idx in sorted(by_key.items()):
        biggest = max(ctl.states[i].spec.model.weight_bytes for i in idx)
        tp = instance_tp(ctl.pool, ctl.cfg.perf, f, 1, biggest, ROOM)
        for i in idx:
            if _row(ctl.states[i].shapes, f, tp) is not None:
                out.setdefault((f, tp, ttft), []).append(i)
    return out


def _row(sh: ShapeTable, f: int, tp: int) -> int | None:
    hit = np.nonzero((sh.flavor == f) & (sh.tp == tp) & (sh.frac >= 1.0))[0]
    return int(hit[0]) if len(hit) else None


def decode_side(ctl: SimulatedReplicas, s: ServiceState) -> ServiceState:
    """The service with its prompts prefilled in a pool: decode-only shapes (usable: the
    step within the TBT budget), replays without prefill work; the full shapes kept."""
    cfg = ctl.cfg
    shapes = decode_only(s.shapes)
    usable = usable_shapes(shapes, s.spec, 0.0, cfg) & (shapes.devices > 0)
    zero = np.zeros(len(s.replay.stream))
    past = ServiceReplay(
        s.past.stream, np.zeros(len(s.past.stream)), shapes, s.spec.tbt_slo_s, cfg.perf,
        cfg.bin_s, cfg.decode_window_s,
    )  # fmt: skip
    replay = ServiceReplay(
        s.replay.stream, zero, shapes, s.spec.tbt_slo_s, cfg.perf, cfg.bin_s,
        cfg.decode_window_s, prior=past.mean_mix(),
    )  # fmt: skip
    return replace(s, shapes=shapes, usable=usable, replay=replay, past=past, full_shapes=s.shapes)


def pool_states(ctl: SimulatedReplicas, plans: dict) -> list[ServiceState]:
    """The prefill pools' states (after the mux groups: a member decodes in its group)."""
    cfg, pool = ctl.cfg, ctl.pool
    out: list[ServiceState] = []
    for (f, tp, ttft), idx in plans.items():
        states = [ctl.states[i] for i in idx]
        biggest = int(np.argmax([s.spec.model.weight_bytes for s in states]))
        big = states[biggest]
        sh = big.full_shapes
        shape = prefill_only(sh.take(np.array([_row(sh, f, tp)])), cfg.perf)
        acc = pool.flavor_accelerators[f]
        members = Members(
            a=np.zeros(len(states)),
            kvr=np.zeros(len(states)),
            c=np.zeros(len(states)),
            kvb=np.array([s.spec.model.kv_bytes_per_token for s in states]),
            weight_bytes=np.array([s.spec.model.weight_bytes for s in states]),
            load_s=np.array(
                [load_seconds(s.spec.model.weight_bytes, acc.name, tp, cfg.perf) for s in states]
            ),
        )
        mem = tp * acc.memory_gib * 1e9 * cfg.perf.memory_usable
        name = f"prefill/{shape.names[0]}"
        if any(g.spec.name == name for g in out):
            name += f" ttft {ttft:g}s"
        spec = ServiceSpec(
            name=name,
            model=big.spec.model,
            ttft_slo_s=ttft,
            tbt_slo_s=min(s.spec.tbt_slo_s for s in states),
            min_replicas=1,
            max_replicas=MAX_POOL_REPLICAS,
        )
        replay, member, pos = _replay(ctl, states, shape, members, mem, past=False)
        past, _, _ = _replay(ctl, states, shape, members, mem, past=True)
        g = ServiceState(spec, shape, np.ones(1, dtype=bool), replay, Status.success(), past)
        g.prefill_for = tuple(idx)
        g.member_pos = (member, pos)
        region = pool.flavors[f].region
        kvb = members.kvb[member] * replay.stream.prompt
        worst = np.zeros(len(member))
        for j, s in enumerate(states):
            m = member == j
            for r in _decode_regions(ctl, s):
                worst[m] = np.maximum(worst[m], kv_transfer_s(kvb[m], pool, region, r))
        g.transfer = worst
        out.append(g)
    return out


def _decode_regions(ctl: SimulatedReplicas, s: ServiceState) -> set[str]:
    """Regions the service may decode in: its group's, else those of its usable shapes."""
    pool = ctl.pool
    if s.member_of is not None:
        grp = ctl.states[s.member_of]
        return {pool.flavors[int(f)].region for f in grp.shapes.flavor}
    return {pool.flavors[int(f)].region for f in s.shapes.flavor[s.usable]}


def _replay(ctl, states, shape, members: Members, mem: float, past: bool):
    cfg = ctl.cfg
    reps = [s.past if past else s.replay for s in states]
    stream, member, pos = merge([r.stream for r in reps])
    flops = np.concatenate(
        [prefill_flops(s.spec.model, r.stream.prompt) for s, r in zip(states, reps, strict=True)]
    )
    offsets = np.cumsum([0] + [len(r.stream) for r in reps])
    work = flops[offsets[member] + pos]
    cold = cold_flags(stream.t, member, cfg.prefill_keep_alive_s)
    work = work + cold * members.load_s[member] * float(shape.flops[0])
    replay = PrefillReplay(
        stream,
        work,
        shape,
        min(s.spec.tbt_slo_s for s in states),
        cfg.perf,
        cfg.bin_s,
        cfg.decode_window_s,
        member=member,
        members=members,
        mem_bytes=mem,
        keep_alive_s=cfg.prefill_keep_alive_s,
        cold=cold,
    )
    return replay, member, pos


def first_tokens(ctl: SimulatedReplicas, p: ServiceState) -> None:
    """At the end: each service's TTFT is the later of its prompt prefilled (pool) and its
    decode side ready, plus the KV transfer; its TBT is the decode side's."""
    member, pos = p.member_pos
    for j, i in enumerate(p.prefill_for):
        m = member == j
        s = ctl.states[i]
        ready = s.replay.ttft[pos[m]] + _load_wait(ctl, i)[pos[m]]
        s.replay.ttft[pos[m]] = np.maximum(ready, p.replay.ttft[m]) + p.transfer[m]


def _load_wait(ctl: SimulatedReplicas, i: int) -> np.ndarray:
    """Per request of service ``i``: seconds its decode side loads the weights first (a cold
    member of a mux group; copied over the host link while the prompt is prefilled)."""
    s = ctl.states[i]
    out = np.zeros(len(s.replay.stream))
    if s.member_of is None:
        return out
    g = ctl.states[s.member_of]
    gm, gpos = g.member_pos
    j = g.members.index(i)
    m = gm == j
    out[gpos[m]] = g.replay.cold[m] * g.replay.members.load_s[j]
    return out
