"""Which services share mux groups, and the groups' controller states (``serving/mux.py``).

From the previous period only: a service whose mean load is below ``hot_fraction`` of one
replica of its cheapest whole-device shape is *cold*; cold services with the same SLOs whose
cheapest shapes are on the same flavor with the same tensor-parallel degree share one group
(an instance keeps ``ROOM`` of its biggest member's weight bytes free). A group starts with one instance and is auto-scaled on its members' total load.

The live pool's controller (``live_mux.py``) groups its services with the same ``plan_of``
and ``instance_tp``, and fits members into an instance's ``mux.instance_bytes``: the same
decisions for the same services file (``tests/serving/test_live_mux_parity.py``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from computepool.model.status import Status
from computepool.serving.keepalive import KeepAliveTable, cold_flags_table, histogram_table
from computepool.serving.mux import (
    Members,
    MuxReplay,
    cold_flags,
    instance_bytes,
    load_seconds,
    merge,
)
from computepool.serving.muxmerge import expected_devices, merge_plans
from computepool.serving.perf import Mix, ShapeTable, capacity_rps, max_tp_per_flavor
from computepool.serving.service import ServiceSpec
from computepool.serving.state import ServiceState

if TYPE_CHECKING:
    from computepool.serving.controller import SimulatedReplicas

#: At most this many instances per group.
MAX_GROUP_REPLICAS = 64
#: A cold model's instance keeps this share of its weight bytes free for KV cache and a
#: second model being switched in.
ROOM = 0.5


@dataclass(frozen=True)
class Candidate:
    """What the plan reads of one service: the simulator builds it from its state, the live
    controller from its services file (``candidate``), so both group by the same code."""

    spec: ServiceSpec
    shapes: ShapeTable
    usable: np.ndarray
    mix: Mix  # the previous period's mean request
    rate: float  # the previous period's mean request rate
    ok: bool = True
    decode: bool = False  # decode-only (its prefill runs in a shared prefill pool)


def candidate(s: ServiceState, past_horizon: float) -> Candidate:
    rate = len(s.past.stream) / max(past_horizon, 1e-9)
    return Candidate(
        s.spec, s.shapes, s.usable, s.past.mean_mix(), rate, s.status.ok, s.full_shapes is not None
    )


def home(c: Candidate, cfg) -> tuple[int, bool] | None:
    """(row of the instance shape for the service, cold?) or None when it has none."""
    whole = c.usable & (c.shapes.frac >= 1.0)
    if not whole.any():
        return None
    cap = capacity_rps(c.shapes, c.mix, c.spec.tbt_slo_s, cfg.target_utilization, cfg.perf)
    idx = np.nonzero(whole & (cap > 0))[0]
    if len(idx) == 0:
        return None
    # the flavor with the lowest cost per SLO-meeting throughput (a group pools its members'
    # load), then the smallest instance on it (a cold model rarely fills one)
    best = int(idx[np.argmin(c.shapes.price_h[idx] / cap[idx])])
    on = idx[c.shapes.flavor[idx] == c.shapes.flavor[best]]
    room = c.shapes.kv_cap[on] * c.spec.model.kv_bytes_per_token >= ROOM * c.spec.model.weight_bytes
    on = on[room] if room.any() else on
    k = int(on[np.argmin(c.shapes.tp[on])])
    return k, c.rate < cfg.hot_fraction * float(cap[k])


def plan_of(cands: list[Candidate], cfg) -> dict[tuple, list[int]]:
    """Groups: key (flavor, tp, ttft SLO, tbt SLO, decode-only) -> indices of the cold candidates (2+)."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, c in enumerate(cands):
        if not c.ok:
            continue
        at = home(c, cfg)
        if at is None or not at[1]:
            continue
        f, tp = int(c.shapes.flavor[at[0]]), int(c.shapes.tp[at[0]])
        groups[(f, tp, c.spec.ttft_slo_s, c.spec.tbt_slo_s, c.decode)].append(i)
    return {k: v for k, v in groups.items() if len(v) >= 2}


def plan(states: list[ServiceState], cfg, past_horizon: float) -> dict[tuple, list[int]]:
    """Groups of the simulator's states (``plan_of`` over their candidates)."""
    return plan_of([candidate(s, past_horizon) for s in states], cfg)


def _row(sh: ShapeTable, f: int, tp: int) -> int | None:
    hit = np.nonzero((sh.flavor == f) & (sh.tp == tp) & (sh.frac >= 1.0))[0]
    return int(hit[0]) if len(hit) else None


@dataclass(frozen=True)
class GroupPlan:
    """One mux group: instances of ``tp`` whole devices of ``flavor``, its members (indices
    of the candidates) and each member's shape row on such an instance."""

    flavor: int
    tp: int
    ttft_slo_s: float
    tbt_slo_s: float
    members: tuple[int, ...]
    rows: tuple[int, ...]
    decode: bool = False


def groups_of(cands: list[Candidate], pool, cfg) -> list[GroupPlan]:
    """The mux groups of the candidates: ``plan_of``, the instance tp raised to hold the
    biggest member (``instance_tp``), members without a shape there left out, groups of 2+.
    ``mux_plans`` (the simulator's and the live controller's groups) starts here."""
    out = []
    for (f, tp, ttft, tbt, decode), idx in plan_of(cands, cfg).items():
        tp = instance_tp(pool, cfg.perf, f, tp, max(cands[i].spec.model.weight_bytes for i in idx))
        rows = [_row(cands[i].shapes, f, tp) for i in idx]
        keep = [(i, r) for i, r in zip(idx, rows, strict=True) if r is not None]
        if len(keep) >= 2:
            out.append(GroupPlan(f, tp, ttft, tbt, tuple(i for i, _ in keep),
                                 tuple(r for _, r in keep), decode))  # fmt: skip
    return out


def mux_plans(ctl: SimulatedReplicas) -> list[GroupPlan]:
    """The mux groups of ``ctl``'s services (``groups_of`` over its previous period);
    ``serving.mux_merge``: smaller-instance groups folded into larger ones (``muxmerge.py``).
    The live controller takes its groups here too."""
    cands = [candidate(s, ctl.past_horizon) for s in ctl.states]
    plans = groups_of(cands, ctl.pool, ctl.cfg)
    if not ctl.cfg.mux_merge:
        return plans
    held: dict[GroupPlan, float] = {}  # each group replayed over the past once

    def devices_of(gp: GroupPlan) -> float:
        if gp not in held:
            held[gp] = _devices(ctl, gp)
        return held[gp]

    return merge_plans(
        plans, row_of=lambda i, f, tp: _row(cands[i].shapes, f, tp), devices_of=devices_of
    )


def group_states(ctl: SimulatedReplicas, plans: list[GroupPlan]) -> list[ServiceState]:
    """Mux group states of ``plans`` (``mux_plans``) over ``ctl``'s services; the members
    are marked ``member_of``."""
    out: list[ServiceState] = []
    for gp in plans:
        g = _group_state(ctl, gp, [x.spec.name for x in out])
        gi = len(ctl.states) + len(out)
        for i in gp.members:
            ctl.states[i].member_of = gi
        out.append(g)
    return out


def _devices(ctl: SimulatedReplicas, gp: GroupPlan) -> float:
    """Devices the group ``gp`` would hold over the previous period (``muxmerge``)."""
    g = _group_state(ctl, gp, [])
    h, cfg = ctl.past_horizon, ctl.cfg
    return expected_devices(g.past, gp.tp, gp.tbt_slo_s, gp.ttft_slo_s, h, cfg)


def _group_state(ctl: SimulatedReplicas, gp: GroupPlan, taken: list[str]) -> ServiceState:
    """The controller state of one mux group (no side effect on the members' states);
    ``taken``: names of the groups built before it."""
    cfg = ctl.cfg
    f, tp, ttft, tbt, decode = gp.flavor, gp.tp, gp.ttft_slo_s, gp.tbt_slo_s, gp.decode
    keep, rows = gp.members, gp.rows
    states = [ctl.states[i] for i in keep]
    acc = ctl.pool.flavor_accelerators[f]
    members = Members(
        a=np.array([s.shapes.a[r] for s, r in zip(states, rows, strict=True)]),
        kvr=np.array([s.shapes.kvr[r] for s, r in zip(states, rows, strict=True)]),
        c=np.array([s.shapes.c[r] for s, r in zip(states, rows, strict=True)]),
        kvb=np.array([s.spec.model.kv_bytes_per_token for s in states]),
        weight_bytes=np.array([s.spec.model.weight_bytes for s in states]),
        load_s=np.array(
            [load_seconds(s.spec.model.weight_bytes, acc.name, tp, cfg.perf) for s in states]
        ),
    )
    biggest = int(np.argmax(members.weight_bytes))
    shape = states[biggest].shapes.take(np.array([rows[biggest]]))
    shape = _instance_shape(shape, cfg.perf.start_s)
    mem = instance_bytes(acc.memory_gib, tp, cfg.perf)
    name = f"mux/{shape.names[0]}"
    name += " decode" if decode else ""
    if name in taken:  # same instances, other SLOs
        name += f" ttft {ttft:g}s tbt {tbt:g}s"
    spec = ServiceSpec(
        name=name,
        model=states[biggest].spec.model,
        ttft_slo_s=ttft,
        tbt_slo_s=tbt,
        min_replicas=1,
        max_replicas=min(MAX_GROUP_REPLICAS, sum(s.spec.max_replicas for s in states)),
    )
    past = [s.past for s in states]
    replay, member, pos = _replay(ctl, states, [s.replay for s in states], shape, members,
                                  mem, prior=past)  # fmt: skip
    past_replay, _, _ = _replay(ctl, states, past, shape, members, mem)
    g = ServiceState(spec, shape, np.ones(1, dtype=bool), replay, Status.success(), past_replay)
    g.members = tuple(keep)
    g.member_pos = (member, pos)
    return g


def instance_tp(pool, perf, f: int, tp: int, biggest: float, room: float = ROOM) -> int:
    """The members' tp, raised until an instance holds the biggest member with ``room``
    to spare where the node allows it."""
    acc = pool.flavor_accelerators[f]
    most = int(max_tp_per_flavor(pool)[f])
    for t in sorted(x for x in perf.tp_sizes if tp <= x <= most):
        if instance_bytes(acc.memory_gib, t, perf) >= (1.0 + room) * biggest:
            return t
    return tp


def _instance_shape(shape, start_s: float):
    from dataclasses import replace

    # an instance starts empty (engine only); members load their weights on demand
    return replace(shape, start_s=np.array([start_s]))


def _keep_alive(ctl, stream, member, n: int, prior) -> KeepAliveTable | None:
    """Per-member keep-alive from the past idle times (``keep_alive_policy: histogram``):
    the run's table also reads the previous period's requests (``prior``), placed before
    t = 0; the previous period's own table reads only itself."""
    cfg = ctl.cfg
    if cfg.keep_alive_policy != "histogram":
        return None
    horizon = float(stream.t[-1]) + 1.0 if len(stream) else 1.0
    if prior is None:
        return histogram_table(stream.t, member, n, horizon, cfg)
    pst, pm, _ = merge([r.stream for r in prior])
    return histogram_table(stream.t, member, n, horizon, cfg, pst.t, pm, ctl.past_horizon)


def _replay(ctl, states, replays, shape, members: Members, mem: float, prior=None):
    cfg = ctl.cfg
    stream, member, pos = merge([r.stream for r in replays])
    flops = np.concatenate([r.flops for r in replays])
    order_flops = np.empty(len(stream))
    # merge() sorted by time: rebuild each request's FLOPs in the merged order
    offsets = np.cumsum([0] + [len(r.stream) for r in replays])
    order_flops[:] = flops[offsets[member] + pos]
    table = _keep_alive(ctl, stream, member, len(states), prior)
    if cfg.residency == "swap":  # a model not decoding may be swapped out: its next
        # prompt loads it again (pessimistic where memory would have kept it)
        cold = cold_flags(stream.t, member, min(cfg.keep_alive_s, cfg.decode_window_s))
    elif table is None:
        cold = cold_flags(stream.t, member, cfg.keep_alive_s)
    else:
        cold = cold_flags_table(stream.t, member, table)
    work = order_flops + cold * members.load_s[member] * float(shape.flops[0])
    if states[0].full_shapes is not None:  # decode side of disaggregated services: a cold
        work = order_flops  # load is a copy over the host link, waited for (disagg.py)
    tbt = min(s.spec.tbt_slo_s for s in states)
    replay = MuxReplay(
        stream,
        work,
        shape,
        tbt,
        cfg.perf,
        cfg.bin_s,
        cfg.decode_window_s,
        member=member,
        members=members,
        mem_bytes=mem,
        keep_alive_s=cfg.keep_alive_s,
        cold=cold,
        keep_alive=table,
        residency=cfg.residency,
    )
    return replay, member, pos
