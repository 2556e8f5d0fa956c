"""Many models on few replicas: multiplexed replica groups with per-model scale to zero.

A *mux group* is a set of identical instances (``tp`` whole devices of one flavor) that serve
several rarely used models. Mechanisms, and the published design each follows:

* **co-location, weights and KV in device memory** (MuxServe, ICML'24): the models used
  within ``keep_alive_s`` stay resident; per instance, the weights of the models with
  sequences in flight (spread over the instances) plus their KV cache must fit
  ``memory_usable`` of its memory, else the bin's decode steps miss; idle resident models are
  evicted first when memory runs short (an eviction before ``keep_alive_s`` is not charged a
  cold start: optimistic, bounded by the autoscaler sizing instances for the whole resident
  set, ``MuxReplay.floor_replicas``); a member whose prompt work of the last
  ``decode_window_s`` keeps k instances busy runs on k of them, each holding a copy of its
  weights (``replicated``);
* **scale to zero per model, cold starts from weight bytes** (ServerlessLLM, OSDI'24): a
  model unused for ``keep_alive_s`` is evicted; its next request first loads the weights,
  ``switch_s + W / (tp * host_link_gbs * h2d_efficiency)`` from pinned host memory (or at
  ``storage_gbs`` from local storage when not cached), the host link of each card catalogued
  in ``catalog/data/serving/host_links.yaml``. The load occupies the instance (it is queued
  as prefill work, pessimistic: real engines overlap the copy with other models' compute) and
  is part of that request's time to first token;
* **token-level scheduling across models** (Aegaeon, SOSP'25): an instance runs one decode
  step of every active model per cycle (weighted round robin, each step reads that model's
  weights once), prefill chunks of all models fill the rest of the TBT budget first come first
  served, so the cycle is ``tau = a_eff / (1 - rho)`` with ``a_eff`` the active models' weight
  reads per instance and ``rho`` the decode work of all of them; instances are auto-scaled on
  the group's total load (never below one), not per model.

* **decode time-slicing with weight swaps** (Aegaeon, SOSP'25; opt-in ``serving.residency:
  swap``, simulator only): when the decoding models' weights (and KV) do not fit the
  instances, an instance serves its decoding models in turns: each turn of ``swap_turn_s``
  gives every model one slot, switch in (``load_s``: switch cost + weights over the host
  link, not overlapped with compute) then ``N = swap_turn_s / TBT budget`` decode steps, so
  its TBT is the turn period over ``N`` (tokens of a turn are streamed ahead of their
  deadlines, Aegaeon's token-deadline accounting). Per instance only the model of the
  current slot holds weights (serial switch, no prefetch buffer); the KV of all decoding
  sequences stays on the device (Aegaeon also swaps KV: not modelled, pessimistic for
  memory, optimistic for switch time). The step cost per token gains ``sum load_s / n / N``
  (``swap_cost``), charged in the replay, so attainment includes it.

What it assumes: all members' weights are in the nodes' host memory (``host_cached``), any
instance can serve any member (requests of one model may be spread over instances), switching
needs no process restart, and prefill and decode share an instance (not disaggregated).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources

import numpy as np
import yaml

from computepool.serving.keepalive import KeepAliveTable
from computepool.serving.perf import Mix, PerfAssumptions, ShapeTable, capacity_rps
from computepool.serving.replay import ServiceReplay
from computepool.serving.streams import RequestStream

#: Member ids are folded into one sorted key array: member * KEY + time (KEY > any time).
KEY = 1e8


@cache
def _links() -> dict:
    text = (
        resources.files("computepool.catalog")
        .joinpath("data/serving/host_links.yaml")
        .read_text(encoding="utf-8")
    )
    return yaml.safe_load(text)


def host_link_gbs(accelerator: str) -> float:
    """GB/s per direction of the card's host link (the catalogue's default when unlisted)."""
    d = _links()
    row = d["links"].get(accelerator)
    return float(row["gbs"] if row else d["default_gbs"])


def load_seconds(weight_bytes: float, accelerator: str, tp: int, perf: PerfAssumptions) -> float:
    """Cold start of a model on a running instance: switch cost + weights over the host link
    (from host memory) or local storage, split over the ``tp`` devices."""
    h2d = tp * host_link_gbs(accelerator) * perf.h2d_efficiency
    bw = h2d if perf.host_cached >= 1.0 else min(h2d, perf.storage_gbs)
    return perf.switch_s + weight_bytes / (bw * 1e9)


def instance_bytes(memory_gib: float, tp: int, perf: PerfAssumptions) -> float:
    """Usable memory of one instance of ``tp`` devices (``memory_usable`` of it): the budget
    the members' weights and KV cache must fit, in the simulator and on the live pool."""
    return tp * memory_gib * 1e9 * perf.memory_usable


def member_bytes(weight_bytes: float, kv_bytes_per_token: float, perf: PerfAssumptions) -> float:
    """What one member's engine process reserves on a shared instance on the live pool: its
    weights and ``min_kv_tokens`` of KV cache (the least a replica shape is allowed)."""
    return weight_bytes + perf.min_kv_tokens * kv_bytes_per_token


def lru_victims(
    resident: Sequence[tuple[float, float, bool]], need: float, free: float
) -> list[int] | None:
    """Which resident members to evict, least recently used first, so that ``need`` bytes fit
    beside ``free``: ``resident`` is (bytes, last used, busy) per member; busy ones (requests
    in flight or waiting) stay. None when evicting every idle one is not enough (MuxServe's
    rule as the simulator applies it: idle resident models go first)."""
    if need <= free + 1e-6:
        return []
    out: list[int] = []
    for i in sorted(range(len(resident)), key=lambda i: resident[i][1]):
        size, _, busy = resident[i]
        if busy:
            continue
        out.append(i)
        free += size
        if need <= free + 1e-6:
            return out
    return None


def cold_flags(t: np.ndarray, member: np.ndarray, keep_alive_s: float) -> np.ndarray:
    """Per request (sorted by time): its model was not used within ``keep_alive_s`` before."""
    cold = np.ones(len(t), dtype=bool)
    order = np.lexsort((t, member))
    ts, ms = t[order], member[order]
    same = np.r_[False, ms[1:] == ms[:-1]]
    gap = np.r_[np.inf, np.diff(ts)]
    cold[order] = ~same | (gap > keep_alive_s)
    return cold


@dataclass(frozen=True)
class Members:
    """Per-member numbers on the group's instance shape (arrays over members)."""

    a: np.ndarray  # s: one decode step's fixed cost (weights read, overhead, all-reduces)
    kvr: np.ndarray  # s per (sequence x resident token) per step
    c: np.ndarray  # s per sequence per step
    kvb: np.ndarray  # KV bytes per token
    weight_bytes: np.ndarray
    load_s: np.ndarray  # cold start on one instance


def merge(streams: list[RequestStream]) -> tuple[RequestStream, np.ndarray, np.ndarray]:
    """One stream of all members' requests in time order, each request's member and its
    index in that member's stream."""
    t = np.concatenate([s.t for s in streams]) if streams else np.zeros(0)
    member = np.concatenate([np.full(len(s), i) for i, s in enumerate(streams)]).astype(np.int64)
    pos = np.concatenate([np.arange(len(s)) for s in streams]).astype(np.int64)
    order = np.argsort(t, kind="stable")
    prompt = np.concatenate([s.prompt for s in streams])[order]
    output = np.concatenate([s.output for s in streams])[order]
    return RequestStream(t[order], prompt, output), member[order], pos[order]


@dataclass
class MuxReplay(ServiceReplay):
    """The replay of one mux group: ``ServiceReplay``'s FIFO prefill queue over all members'
    requests (each request's work = its prefill FLOPs, plus its model's load when cold) and a
    decode model with per-member step costs (``_bins``)."""

    member: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    members: Members | None = None
    mem_bytes: float = 0.0  # usable memory of one instance
    keep_alive_s: float = 60.0
    cold: np.ndarray | None = None  # per request: its model had to be loaded first
    #: per-model keep-alive by epoch (``keepalive.py``); None: ``keep_alive_s`` for all
    keep_alive: KeepAliveTable | None = None
    #: ``muxserve`` or ``swap`` (``serving.residency``)
    residency: str = "muxserve"

    def __post_init__(self) -> None:
        super().__post_init__()
        m = self.members
        assert m is not None
        s = self.stream
        ctx = s.prompt + s.output / 2.0
        k = ctx * m.kvr[self.member] + m.c[self.member]
        self._cum["outk"] = np.concatenate([[0.0], np.cumsum(s.output * k)])
        self._cum["ctxkv"] = np.concatenate([[0.0], np.cumsum(ctx * m.kvb[self.member])])
        keys = self.member * KEY + s.t
        order = np.argsort(keys, kind="stable")
        self._keys = keys[order]
        self._kwork = np.concatenate([[0.0], np.cumsum(self.flops[order])])
        self._mean_k = float((s.output * k).sum() / max(s.output.sum(), 1.0)) if len(s) else 0.0

    def active(self, t1: np.ndarray, width: float | np.ndarray) -> np.ndarray:
        """(members, len(t1)) bool: the member had a request in (t1 - width, t1] (``width``
        one number or one per member)."""
        ids = np.arange(len(self.members.a), dtype=np.float64)[:, None] * KEY
        lo = np.asarray(t1, dtype=np.float64)[None, :] - np.reshape(width, (-1, 1))
        a = np.searchsorted(self._keys, ids + lo, side="right")
        b = np.searchsorted(self._keys, ids + np.asarray(t1)[None, :], side="right")
        return b > a

    def member_work(self, t1: np.ndarray, width: float) -> np.ndarray:
        """(members, len(t1)): each member's prefill work (loads included) in (t1 - width, t1]."""
        ids = np.arange(len(self.members.a), dtype=np.float64)[:, None] * KEY
        a = np.searchsorted(self._keys, ids + (np.asarray(t1) - width)[None, :], side="right")
        b = np.searchsorted(self._keys, ids + np.asarray(t1)[None, :], side="right")
        return self._kwork[b] - self._kwork[a]

    def busy(self, t1: np.ndarray | float) -> np.ndarray:
        """(members, len(t1)), or (members,) for one time: instances each member's prompt
        work of the last ``decode_window_s`` keeps busy (``busy_instances``)."""
        t = np.atleast_1d(np.asarray(t1, dtype=np.float64))
        dw = self.decode_window_s
        out = busy_instances(self.member_work(t, dw), float(self.shapes.flops[0]), dw)
        return out if np.ndim(t1) else out[:, 0]

    def resident_width(self, now: float) -> float | np.ndarray:
        """How far back a use keeps a member resident at ``now``: the decode window or its
        keep-alive, whichever is longer (per member under ``keep_alive_policy: histogram``)."""
        if self.keep_alive is None:
            return max(self.decode_window_s, self.keep_alive_s)
        return np.maximum(self.keep_alive.at(now), self.decode_window_s)

    def _step(
        self, dec: np.ndarray, res: np.ndarray, n: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return step_costs(self.members, dec, res, n)

    def _bins(self, t0, t1, groups):
        k = max(1, int(np.ceil((t1 - t0) / self.bin_s - 1e-9)))
        edges = np.minimum(t0 + self.bin_s * np.arange(k + 1), t1)
        edges[-1] = t1
        budget = self.perf.tbt_budget * self.tbt_slo
        if not groups:
            z = np.zeros(k)
            return edges, z, z, np.full(k, np.inf), np.full(k, budget)
        n = sum(g.count * (g.ready_at <= edges[:-1] + 1e-9).astype(np.float64) for g in groups)
        f = float(self.shapes.flops[0])
        dw = self.decode_window_s
        w = self.window(edges[1:] - dw, edges[1:])
        x, xk, cnt = w["out"] / dw, w["outk"] / dw, w["n"]
        # models with sequences in flight: one step per cycle, their weights must be in
        # memory; idle resident models are evicted first when memory runs short (LRU)
        dec = self.active(edges[1:], dw)
        a_eff, resident = self._step(dec, dec, n)
        extra = replicated(self.members, self.busy(edges[1:]), n) / np.maximum(n, 1.0)
        big = np.maximum(n, 1e-9)
        rho = xk / big
        with np.errstate(divide="ignore", invalid="ignore"):
            kv = np.where(cnt > 0, w["ctxkv"] / np.maximum(cnt, 1), 0.0)
        tau, resident = _cycle(a_eff, resident + extra, rho, x / big * kv)
        if self.residency == "swap":  # swap only where the decoding models do not fit
            sw = swap_cost(self.members, dec, n, budget, self.perf)
            w1 = (dec * self.members.weight_bytes[:, None]).max(axis=0, initial=0.0)
            tau_s, res_s = _cycle(a_eff + sw, w1 + extra, rho, x / big * kv)
            over = resident > self.mem_bytes
            tau, resident = np.where(over, tau_s, tau), np.where(over, res_s, resident)
        bad = (resident > self.mem_bytes) | (n <= 0)
        tau = np.where(bad, np.inf, tau)
        share = np.maximum(1.0 - tau / budget, self.perf.prefill_floor)
        share = np.where(np.isfinite(tau), share, self.perf.prefill_floor)
        cap = n * f * share
        r1 = np.where(n > 0, f * share, 0.0)
        return edges, cap, r1, tau, np.full(k, budget)

    # ---- what the autoscaler sees ------------------------------------------------------
    def masks(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """(members decoding, members resident) at ``now``: a request within the last
        ``decode_window_s``, resp. ``resident_width`` (the keep-alive)."""
        dec = self.active(np.array([now]), self.decode_window_s)[:, 0]
        res = self.active(np.array([now]), self.resident_width(now))[:, 0]
        return dec, res

    def mean_k(self, now: float) -> float:
        """Mean per-token decode cost (s per sequence and step) of the last ``keep_alive_s``."""
        w = self.window(now - self.keep_alive_s, now)
        return float(w["outk"]) / float(w["out"]) if float(w["out"]) > 0 else self._mean_k

    def decision_shapes(self, now: float, replicas: int) -> ShapeTable:
        """The instance shape with the step cost of the models active in the last
        ``keep_alive_s`` (spread over ``replicas`` instances) and their mean per-token cost."""
        dec, res = self.masks(now)
        n = max(replicas, self.floor_replicas(now), 1)
        return instance_shape(self.shapes, self.members, dec, res, self.busy(now), n,
                              self.mean_k(now), self.mem_bytes, self.residency, self.perf,
                              self.perf.tbt_budget * self.tbt_slo)  # fmt: skip

    def floor_replicas(self, now: float) -> int:
        dec, res = self.masks(now)
        return floor_instances(self.members, dec, res, self.busy(now), self.mem_bytes,
                               self.perf, self.tbt_slo, self.residency)  # fmt: skip

    def sizing(
        self, now: float, replicas: int, mix: Mix, tbt_slo: float, util: float
    ) -> tuple[np.ndarray, float]:
        """``group_plan`` at the members' activity replayed up to ``now``."""
        dec, res = self.masks(now)
        return group_plan(self.shapes, self.members, self.mem_bytes, self.perf, dec, res,
                          self.busy(now), replicas, self.mean_k(now), mix, tbt_slo, util,
                          self.residency)  # fmt: skip


def _cycle(a_eff, weights, rho, kv_rate) -> tuple[np.ndarray, np.ndarray]:
    """(decode cycle ``a_eff / (1 - rho)``, resident bytes: ``weights`` plus the KV of the
    sequences in flight, ``kv_rate`` bytes per second of cycle)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.where(rho < 1.0, a_eff / np.maximum(1.0 - rho, 1e-12), np.inf)
        return tau, weights + kv_rate * tau


def swap_cost(
    m: Members, dec: np.ndarray, n: np.ndarray | float, budget: float, perf: PerfAssumptions
) -> np.ndarray:
    """Per instance and decode step (per time): the switch seconds of Aegaeon's turns
    (``residency: swap``): more decoding models (``dec``, members x times) than ``n``
    instances share each instance in turns; every turn switches each one in (``load_s``)
    and then decodes ``N = swap_turn_s / budget`` tokens of it, so a step carries
    ``sum(load_s) / n / N``. Zero when each decoding model has an instance of its own."""
    d = np.asarray(dec, dtype=bool).reshape(len(m.a), -1)
    big = np.maximum(np.asarray(n, dtype=np.float64), 1.0)
    c = (d * m.load_s[:, None]).sum(axis=0)
    tokens = max(perf.swap_turn_s / max(budget, 1e-9), 1.0)
    return np.where(d.sum(axis=0) > big, c / big / tokens, 0.0)


def swap_time_floor(m: Members, dec: np.ndarray, budget: float, perf: PerfAssumptions) -> int:
    """Fewest instances whose turns keep every decoding model's TBT: per turn of
    ``N = swap_turn_s / budget`` tokens, ``sum(load_s) + N sum(a)`` within half of
    ``N budget`` (the other half for prefill, as the resident rule's floor); at most one
    instance per decoding model (no switches then), never below the resident rule's step
    floor."""
    d = np.asarray(dec, dtype=bool)
    cnt = int(d.sum())
    if cnt == 0:
        return 0
    a, c = float(m.a[d].sum()), float(m.load_s[d].sum())
    tokens = max(perf.swap_turn_s / max(budget, 1e-9), 1.0)
    steps = math.ceil(a / (0.5 * budget) - 1e-9)
    turns = math.ceil((c / tokens + a) / (0.5 * budget) - 1e-9)
    return min(turns, max(cnt, steps))


def step_costs(
    m: Members, dec: np.ndarray, res: np.ndarray, n: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-instance fixed step cost of the models decoding (``dec``, members x times) and
    weight bytes of the resident ones (``res``), spread over ``n`` instances."""
    dec, res = np.asarray(dec).reshape(len(m.a), -1), np.asarray(res).reshape(len(m.a), -1)
    big = np.maximum(n, 1.0)
    a_sum = (dec * m.a[:, None]).sum(axis=0)
    a_max = (dec * m.a[:, None]).max(axis=0, initial=0.0)
    w_sum = (res * m.weight_bytes[:, None]).sum(axis=0)
    w_max = (res * m.weight_bytes[:, None]).max(axis=0, initial=0.0)
    return np.maximum(a_sum / big, a_max), np.maximum(w_sum / big, w_max)


def busy_instances(work: np.ndarray, flops: float, width: float) -> np.ndarray:
    """Instances each member's prompt work of the last ``width`` seconds (``work``, members
    x times) would keep busy on instances of ``flops`` FLOP/s: ceil(work / (flops width))."""
    return np.ceil(np.asarray(work) / (flops * max(width, 1e-9)) - 1e-9)


def replicated(m: Members, busy: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Weight bytes of the extra copies the busy members need on ``n`` instances (per time):
    a member whose prompts keep ``busy`` instances busy (``busy_instances``) runs on
    min(busy, n) of them, each holding its weights (the first copy is counted with the
    resident models)."""
    k = np.asarray(busy, dtype=np.float64).reshape(len(m.a), -1)
    copies = np.maximum(np.minimum(k, np.asarray(n, dtype=np.float64)) - 1.0, 0.0)
    return (copies * m.weight_bytes[:, None]).sum(axis=0)


def weights_floor(w: float, m: Members, busy: np.ndarray, mem_bytes: float) -> int:
    """Fewest instances that hold ``w`` resident weight bytes plus the busy members' copies
    (``replicated``) with a fifth of memory to spare."""
    if w <= 0:
        return 0
    n = max(math.ceil(w / (0.8 * mem_bytes) - 1e-9), 1)
    while n < 4096 and w + float(replicated(m, busy, np.array([n]))[0]) > 0.8 * mem_bytes * n:
        n += 1
    return n


def floor_instances(
    m: Members,
    dec: np.ndarray,
    res: np.ndarray,
    busy: np.ndarray,
    mem_bytes: float,
    perf: PerfAssumptions,
    tbt_slo: float,
    residency: str = "muxserve",
) -> int:
    """Instances a group needs whatever its request rate: to hold the weights of the
    resident models (``res``) and the busy members' copies (``busy``: ``weights_floor``) with
    a fifth of memory left for KV cache, and to run one decode step of every model decoding
    (``dec``) within half the TBT budget. ``residency: swap``: the lesser of that and
    Aegaeon's turns: the biggest decoding member's weights and the copies in memory,
    ``swap_time_floor`` instances in time."""
    w = float(m.weight_bytes[np.asarray(res, dtype=bool)].sum())
    a = float(m.a[np.asarray(dec, dtype=bool)].sum())
    budget = perf.tbt_budget * tbt_slo
    resident = max(
        weights_floor(w, m, busy, mem_bytes),
        math.ceil(a / (0.5 * budget) - 1e-9) if a > 0 else 0,
    )
    if residency != "swap":
        return resident
    w1 = float(m.weight_bytes[np.asarray(dec, dtype=bool)].max(initial=0.0))
    swap = max(weights_floor(w1, m, busy, mem_bytes), swap_time_floor(m, dec, budget, perf))
    return min(resident, swap)


def instance_shape(
    shape: ShapeTable,
    m: Members,
    dec: np.ndarray,
    res: np.ndarray,
    busy: np.ndarray,
    n: int,
    mean_k: float,
    mem_bytes: float,
    residency: str = "muxserve",
    perf: PerfAssumptions | None = None,
    budget: float = 0.0,
) -> ShapeTable:
    """The group's instance shape (one row) with the step cost of the decoding models and
    the KV room the resident ones and the busy members' copies leave, spread over ``n``
    instances. ``residency: swap`` where the resident weights leave under a fifth of memory:
    the step cost gains ``swap_cost`` and only the biggest decoding member is resident."""
    big = np.array([float(n)])
    a_eff, resident = step_costs(m, dec, res, big)
    resident = resident + replicated(m, busy, big) / big
    if residency == "swap" and perf is not None and float(resident[0]) > 0.8 * mem_bytes:
        a_eff = a_eff + swap_cost(m, dec, big, budget, perf)
        w1 = float(m.weight_bytes[np.asarray(dec, dtype=bool).reshape(-1)].max(initial=0.0))
        resident = w1 + replicated(m, busy, big) / big
    kvb = float(np.mean(m.kvb))
    kv_cap = max(mem_bytes - float(resident[0]), 0.0) / kvb
    return replace(
        shape,
        a=np.array([float(a_eff[0]) or float(m.a.min())]),
        kvr=np.zeros(1),
        c=np.array([mean_k]),
        kv_cap=np.array([kv_cap]),
    )


def group_plan(
    shape: ShapeTable,
    m: Members,
    mem_bytes: float,
    perf: PerfAssumptions,
    dec: np.ndarray,
    res: np.ndarray,
    busy: np.ndarray,
    replicas: int,
    mean_k: float,
    mix: Mix,
    tbt_slo: float,
    util: float,
    residency: str = "muxserve",
) -> tuple[np.ndarray, float]:
    """What a mux group's autoscaler sizes instances with, in the simulator and on the live
    pool: (requests per second one instance carries at the members' activity, the capacity
    the group needs whatever its rate: ``floor_instances`` of them). ``dec``/``res``: the
    members decoding/resident, ``busy``: the instances each one's prompts keep busy."""
    floor = floor_instances(m, dec, res, busy, mem_bytes, perf, tbt_slo, residency)
    sh = instance_shape(shape, m, dec, res, busy, max(replicas, floor, 1), mean_k, mem_bytes,
                        residency, perf, perf.tbt_budget * tbt_slo)  # fmt: skip
    cap = capacity_rps(sh, mix, tbt_slo, util, perf)
    return cap, floor * float(cap[0])
