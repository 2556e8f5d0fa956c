"""Replay a stream of latency-bound requests against serving slots; report the deadline-hit rate.

Each flavor lends ``servers[f]`` accelerators to the stream (one request at a time each). Requests
are taken in arrival order; a request reaches region R after half its round trip, waits for the
first free slot of the flavor, runs, and its answer travels back. It goes to the legal flavor
with the smallest end-to-end time; when even that misses the deadline it runs on the device
(edge). Queues are simulated exactly (per-slot free times), not approximated.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from computepool.admission.residency import ResidencyCheck
from computepool.model.job import Dataset
from computepool.model.pool import Pool
from computepool.routing.latency import LatencyModel, Site, compute_ms


@dataclass(frozen=True)
class RequestClass:
    """A kind of request in a stream (e.g. one automaker's cockpit assistant)."""

    name: str
    tenant: str
    sites: tuple[str, ...]
    rate_per_s: float
    deadline_ms: float
    work_h100_ms: float
    network: str = "5g"
    data: tuple[Dataset, ...] = ()
    #: Log-normal spread of the work (sigma of log); 0 = every request the same.
    work_sigma: float = 0.5


@dataclass(frozen=True)
class Stream:
    arrival_s: np.ndarray
    klass: np.ndarray  # index into classes
    site: np.ndarray  # index into sites
    work_h100_ms: np.ndarray
    classes: tuple[RequestClass, ...]
    sites: tuple[Site, ...]

    def __len__(self) -> int:
        return len(self.arrival_s)


def generate_stream(
    classes: Sequence[RequestClass], model: LatencyModel, duration_s: float, seed: int = 0
) -> Stream:
    """Poisson arrivals per class over ``duration_s``, sites uniform within a class."""
    rng = np.random.default_rng(seed)
    site_names = sorted({s for c in classes for s in c.sites})
    sites = tuple(model.site(s) for s in site_names)
    idx = {s: i for i, s in enumerate(site_names)}
    arr, kl, st, wk = [], [], [], []
    for k, c in enumerate(classes):
        n = rng.poisson(c.rate_per_s * duration_s)
        arr.append(np.sort(rng.uniform(0.0, duration_s, n)))
        kl.append(np.full(n, k))
        st.append(np.array([idx[s] for s in c.sites])[rng.integers(0, len(c.sites), n)])
        mu = np.log(c.work_h100_ms) - c.work_sigma**2 / 2  # mean stays work_h100_ms
        wk.append(
            rng.lognormal(mu, c.work_sigma, n) if c.work_sigma > 0 else np.full(n, c.work_h100_ms)
        )
    order = np.argsort(np.concatenate(arr), kind="stable") if arr else np.zeros(0, dtype=int)
    cat = (lambda xs: np.concatenate(xs)[order]) if arr else (lambda xs: np.zeros(0))
    return Stream(
        cat(arr), cat(kl).astype(int), cat(st).astype(int), cat(wk), tuple(classes), sites
    )


@dataclass(frozen=True)
class StreamResult:
    target: np.ndarray  # flavor index, -1 = edge
    total_ms: np.ndarray  # nan for edge
    hit: np.ndarray  # bool: answered in the cloud within the deadline
    flavors: tuple[str, ...]

    def hit_rate(self, mask: np.ndarray | None = None) -> float:
        h = self.hit if mask is None else self.hit[mask]
        return float(h.mean()) if len(h) else float("nan")

    def edge_rate(self, mask: np.ndarray | None = None) -> float:
        t = self.target if mask is None else self.target[mask]
        return float((t < 0).mean()) if len(t) else float("nan")


def replay_stream(
    stream: Stream,
    pool: Pool,
    model: LatencyModel,
    check: ResidencyCheck,
    servers: Mapping[str, int],
) -> StreamResult:
    """Route every request of ``stream`` over the serving slots ``servers`` (flavor name -> n)."""
    names = tuple(f.name for f in pool.flavors)
    unknown = set(servers) - set(names)
    if unknown:
        raise ValueError(f"servers: unknown flavor(s) {', '.join(sorted(unknown))}")
    slots = [[0.0] * int(servers.get(n, 0)) for n in names]
    has = np.array([len(s) > 0 for s in slots])
    # per (class, site): rtt per flavor (ms) and legality per flavor
    rtt_cache: dict[tuple[int, int], np.ndarray] = {}
    legal_cache: dict[int, np.ndarray] = {}
    speed_ms = compute_ms(pool, 1.0)  # ms per H100-ms of work
    n = len(stream)
    target = np.full(n, -1, dtype=np.int64)
    total = np.full(n, np.nan)
    hit = np.zeros(n, dtype=bool)
    for i in range(n):
        k, s = int(stream.klass[i]), int(stream.site[i])
        c = stream.classes[k]
        if k not in legal_cache:
            mask, _ = check.flavor_mask(c.data, pool)
            legal_cache[k] = mask & has
        if (k, s) not in rtt_cache:
            site = stream.sites[s]
            by_region = {r: model.rtt_ms(site, reg, c.network) for r, reg in pool.regions.items()}
            rtt_cache[(k, s)] = np.array([by_region[f.region] for f in pool.flavors])
        rtt = rtt_cache[(k, s)]
        t0 = float(stream.arrival_s[i]) * 1000.0
        best_f, best_t, best_start = -1, np.inf, 0.0
        comp = speed_ms * float(stream.work_h100_ms[i])
        for f in np.nonzero(legal_cache[k])[0]:
            reach = t0 + rtt[f] / 2.0
            start = max(reach, slots[f][0])
            t = start - t0 + comp[f] + rtt[f] / 2.0
            if t < best_t:
                best_f, best_t, best_start = int(f), t, start
        if best_f >= 0 and best_t <= c.deadline_ms:
            heapq.heapreplace(slots[best_f], best_start + comp[best_f])
            target[i], total[i], hit[i] = best_f, best_t, True
    return StreamResult(target, total, hit, names)
