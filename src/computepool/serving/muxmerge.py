"""Mux groups of one flavor share the bigger instances (``serving.mux_merge``).

``plan_of`` groups the cold members by flavor *and* by the tensor-parallel degree of their
smallest instance, so on one flavor the 32B models share 2-device instances and the 72B
ones 4-device instances, each group paying its own weights floor. A group sized by its
prompt bursts (compute) rather than by its members' weights holds instances whose memory is
partly unused; the members of a smaller-instance group of the same flavor and SLOs can run
there instead (at the bigger instance's tp), and the instances they held alone are no
longer needed. Same reasoning as MuxServe's placement (ICML'24: co-locate models so that
the memory one needs and the compute another needs share devices), applied to whole groups.

Decided from the previous period only, with the sizing the groups themselves use:
``expected_devices`` replays a group over the previous period and, every half
``sizing_lookback_s``, takes the instances its sizing asks (``sizing.slo_need`` for the
prompts at the members' decode cost, the weights floor ``mux.floor_instances``). Largest
instances first, a group joins the next larger one when the two together would have held
fewer devices than apart; only one tp step (``TP_STEP``): a 1-device group does not join
4-device instances (on the long-tail sweep such a merge, Zipf 1.6 x 1, held fewer devices
as estimated but missed the TTFT SLO far more often, 93.0 % worst service against 97.5 %
with the one-step rule: the sizing's estimate under-provisions it). Members without a
shape on the bigger instance keep their group; a group that stays apart may take in the
next smaller one. The live controller takes the simulator's plans (``muxplan.mux_plans``),
so a merged group runs there too (its members' engines at the bigger instance's tp).

What it assumes (as the mux groups do): any instance can serve any member, memory is
pooled over the group's instances (no bin packing of whole models), and a small model on
a bigger instance costs what its shape at that tp says (the catalogue's TP efficiency).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable

import numpy as np

from computepool.serving.sizing import slo_need

#: A member runs on instances at most this many times its own instance's devices.
TP_STEP = 2


def expected_devices(past, tp: int, tbt_slo: float, ttft_slo: float, horizon: float, cfg) -> float:
    """Mean devices the group replayed in ``past`` (a ``MuxReplay`` of the previous period,
    ``horizon`` seconds long) would hold under its own sizing, at points every half
    ``sizing_lookback_s``: ``tp`` x the larger of the instances its prompts ask
    (``sizing.slo_need`` over the instance's capacity at the members' decode cost) and its
    weights floor (``mux.floor_instances``)."""
    step = 0.5 * cfg.sizing_lookback_s
    points = np.arange(min(cfg.sizing_lookback_s, horizon), horizon + 1e-9, step)
    held = []
    for at in points:
        at = float(at)
        _, mix = past.load(at, cfg.window_s, cfg.burst_window_s)
        n = 1
        for _ in range(2):  # the decode cost is spread over the instances held
            cap, mem_floor = past.sizing(at, n, mix, tbt_slo, cfg.target_utilization)
            cap1 = float(cap[0])
            if cap1 <= 0:
                break
            need = slo_need(past.stream.t, past.flops, at, mix, cap1, ttft_slo, cfg)
            if not np.isfinite(need):
                need = 0.0
            n = max(math.ceil(need / cap1 - 1e-9), round(mem_floor / cap1), 1)
        held.append(tp * n)
    return float(np.mean(held)) if held else 0.0


def merge_plans(
    plans: list,
    row_of: Callable[[int, int, int], int | None],
    devices_of: Callable[[object], float],
) -> list:
    """``plans`` (``muxplan.GroupPlan``) with the smaller-instance groups of each flavor and
    SLOs folded into the larger ones where the merged group would hold fewer devices than
    the two apart (``devices_of``, from the previous period); ``row_of(candidate, flavor,
    tp)``: the member's shape row on such an instance, None when it has none (the group then
    stays alone). A group that stays alone may take in the next smaller ones."""
    from computepool.serving.muxplan import GroupPlan

    by_key: dict[tuple, list] = defaultdict(list)
    for p in plans:
        by_key[(p.flavor, p.ttft_slo_s, p.tbt_slo_s, p.decode)].append(p)
    out = []
    for ps in by_key.values():
        ps = sorted(ps, key=lambda p: -p.tp)
        cur = ps[0]
        for p in ps[1:]:
            rows = [row_of(i, cur.flavor, cur.tp) for i in p.members]
            if cur.tp <= TP_STEP * p.tp and all(r is not None for r in rows):
                both = GroupPlan(cur.flavor, cur.tp, cur.ttft_slo_s, cur.tbt_slo_s,
                                 cur.members + p.members, cur.rows + tuple(rows), cur.decode)  # fmt: skip
                if devices_of(both) < devices_of(cur) + devices_of(p):
                    cur = both
                    continue
            out.append(cur)  # the next smaller groups may join ``p`` instead
            cur = p
        out.append(cur)
    return out
