"""The FGD packing experiment (``cpool pack``).

Pods of a trace arrive one by one in a shuffled order (per seed) until their total device
request reaches ``tune`` x the pool's capacity (the trace is resampled with replacement when it
is smaller, thinned at random when larger); nothing departs. After each arrival we record the
share of device capacity allocated and the fragmented share (FGD's measure, against the
trace's own task-type distribution), each as a function of the arrived request in percent of
capacity. ``discretise`` bins them at every 1% (0..130) exactly as the paper's analysis does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from computepool.placement.engine import PlacementEngine
from computepool.placement.frag import TargetWorkload
from computepool.placement.openb import PodList
from computepool.placement.profiles import Profile, get_profile
from computepool.placement.state import SlotState

MAX_PERCENT = 130


@dataclass
class PackRun:
    policy: str
    seed: int
    tune: float
    arrived: np.ndarray  # % of capacity requested so far, after each pod
    allocated: np.ndarray  # % of capacity allocated, after each pod
    fragmented: np.ndarray  # % of capacity fragmented, after each pod
    placed: np.ndarray  # bool per pod
    decision_s: np.ndarray  # wall seconds per placement decision
    decision_cpu_s: np.ndarray  # CPU seconds of this thread per decision (robust to a busy host)

    def discretise(self, values: np.ndarray, top: int = MAX_PERCENT) -> np.ndarray:
        return discretise(self.arrived, values, top)


def discretise(arrived: np.ndarray, values: np.ndarray, top: int = MAX_PERCENT) -> np.ndarray:
    """Value at k% arrived (k = 0..top): the mean over the records whose arrived share rounds
    to k, else over those within k +- 1; NaN where none (FGD artifact's analysis)."""
    bucket = np.round(arrived)
    out = np.full(top + 1, np.nan)
    idx = np.clip(bucket, -1, top + 2).astype(np.int64) + 1
    sums = np.bincount(idx, weights=values, minlength=top + 4)
    cnts = np.bincount(idx, minlength=top + 4)
    for k in range(top + 1):
        c = cnts[k + 1]
        if c:
            out[k] = sums[k + 1] / c
        else:
            s, n = sums[k : k + 3].sum(), cnts[k : k + 3].sum()
            if n:
                out[k] = s / n
    return out


def arrival_order(pods: PodList, capacity_milli: int, tune: float, seed: int) -> np.ndarray:
    """Indices of the pods in arrival order for one seed (shuffled, then tuned to ``tune``)."""
    rng = np.random.default_rng(seed)
    milli = np.array([r.total_gpu_milli for r in pods.requests], dtype=np.int64)
    order = rng.permutation(len(pods))
    target = tune * capacity_milli
    total = int(milli.sum())
    if total > target:
        keep = np.ones(len(order), dtype=bool)
        for i in rng.permutation(len(order)):
            if total <= target:
                break
            keep[i] = False
            total -= int(milli[order[i]])
        return order[keep]
    extra = []
    while True:
        j = int(rng.integers(len(pods)))
        if total + milli[j] > target:
            break
        total += int(milli[j])
        extra.append(j)
    return np.concatenate([order, np.array(extra, dtype=np.int64)])


def run_pack(
    nodes: SlotState,
    pods: PodList,
    policy: str | Profile,
    seed: int,
    tune: float = 1.3,
    on_progress: Callable[[float], None] | None = None,
    record_frag: bool = True,
) -> PackRun:
    """One packing run of ``policy`` on a fresh copy of ``nodes``.

    ``record_frag=False`` skips the fragmentation curve (NaN) when it is not needed, which
    saves about a quarter of the time of policies that do not measure fragmentation anyway.
    """
    if tune <= 0:
        raise ValueError(f"tune must be > 0, got {tune}")
    profile = get_profile(policy) if isinstance(policy, str) else policy
    state = nodes.copy()
    target = TargetWorkload.from_requests(pods.requests, state.types, profile.target_share)
    engine = PlacementEngine(state, profile, target, seed=np.random.default_rng([seed, 1]))
    cap = state.total_gpu_milli
    if cap == 0:
        raise ValueError("the node list has no devices")
    order = arrival_order(pods, cap, tune, seed)
    n = len(order)
    arrived, alloc, frag = np.zeros(n), np.zeros(n), np.zeros(n)
    placed = np.zeros(n, dtype=bool)
    dt, dcpu = np.zeros(n), np.zeros(n)
    everything = np.arange(len(state))
    frag_total = float(engine.ctx.frag(everything).sum()) if record_frag else np.nan
    req_milli, used = 0, 0
    clock, cpu_clock = time.perf_counter, time.thread_time
    for i, p in enumerate(order):
        req = pods.requests[int(p)]
        c0, t0 = cpu_clock(), clock()
        b = engine.place(req)
        dt[i], dcpu[i] = clock() - t0, cpu_clock() - c0
        req_milli += req.total_gpu_milli
        if b is not None:
            placed[i] = True
            used += req.total_gpu_milli
            if record_frag:
                frag_total += engine.ctx.refresh_frag(b.node)
        arrived[i], alloc[i], frag[i] = req_milli, used, frag_total
        if on_progress is not None and i % 500 == 0:
            on_progress(i / n)
    scale = 100.0 / cap
    return PackRun(
        profile.name, seed, tune, arrived * scale, alloc * scale, frag * scale, placed, dt, dcpu
    )
