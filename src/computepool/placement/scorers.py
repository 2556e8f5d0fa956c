"""Score plugins: rank the feasible nodes for one request (higher is better).

Each scorer is a pure function ``(ctx, nodes, req) -> (scores, devices)`` vectorised over the
candidate ``nodes``; ``devices`` is the device a share request would take on each node (or
``None`` when the profile's device selector decides). The baselines keep the integer score
scales of the FGD artifact (kube-scheduler scores 0..100, truncated), because their ties,
broken at random, are part of how they behave.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from computepool.placement.frag import TargetWorkload, node_frag, node_stranded
from computepool.placement.request import PodRequest
from computepool.placement.state import MILLI, SlotState

#: Normalisers of the FGD artifact: the largest node it expects (128 CPUs, 8 devices).
MAX_SPEC_CPU = 128_000.0
MAX_SPEC_GPU = 8_000.0
MAX_SCORE = 100

Scores = tuple[np.ndarray, np.ndarray | None]


@dataclass
class ScoreContext:
    """What scorers may read besides the request: the slot state and per-node caches."""

    state: SlotState
    target: TargetWorkload | None = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    #: Workers of each device-use kind per node (GPU clustering), columns = ``gpu_tag``.
    tag_count: np.ndarray = field(default=None)  # type: ignore[assignment]
    _frag: np.ndarray = field(default=None)  # type: ignore[assignment]
    _frag_stamp: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = len(self.state)
        if self.tag_count is None:
            self.tag_count = np.zeros((n, self.state.max_devices + 1), dtype=np.int32)
        self._frag = np.zeros(n)
        self._frag_stamp = np.full(n, -1, dtype=np.int64)

    def frag(self, nodes: np.ndarray) -> np.ndarray:
        """Current fragmentation of ``nodes`` (cached per node version)."""
        if self.target is None:
            raise ValueError("this scorer needs a target workload (fragmentation measure)")
        s = self.state
        stale = nodes[self._frag_stamp[nodes] != s.version[nodes]]
        if len(stale):
            self._frag[stale] = node_frag(
                s.gpu_free[stale], s.cpu_free[stale], s.gpu_type[stale], self.target
            )
            self._frag_stamp[stale] = s.version[stale]
        return self._frag[nodes]

    def refresh_frag(self, node: int) -> float:
        """Recompute one node's fragmentation after a change; returns how much it grew."""
        old = float(self._frag[node]) if self._frag_stamp[node] >= 0 else 0.0
        return float(self.frag(np.array([node]))[0]) - old

    def cluster_frag(self) -> float:
        """Fragmented milli-units of the whole state."""
        return float(self.frag(np.arange(len(self.state))).sum())

    def on_bind(self, node: int, req: PodRequest, sign: int = 1) -> None:
        if req.gpu_tag >= 0:
            self.tag_count[node, req.gpu_tag] += sign


ScoreFn = Callable[["ScoreContext", np.ndarray, PodRequest], Scores]


def _trunc(x: np.ndarray) -> np.ndarray:
    return np.trunc(x)


def score_random(ctx: ScoreContext, nodes: np.ndarray, req: PodRequest) -> Scores:
    """Every feasible node scores the same: the choice is uniform among them."""
    return np.zeros(len(nodes)), None


def score_dotprod(ctx: ScoreContext, nodes: np.ndarray, req: PodRequest) -> Scores:
    """Tetris-style alignment: a small dot product of free and requested (normalised) wins."""
    s = ctx.state
    cpu = s.cpu_free[nodes].astype(np.float64)
    gpu = s.gpu_free[nodes].sum(axis=1).astype(np.float64)
    dot = (cpu * req.cpu_milli / MAX_SPEC_CPU**2 + gpu * req.total_gpu_milli / MAX_SPEC_GPU**2) / 2
    return _trunc(MAX_SCORE * (1.0 - dot)), None


def score_bestfit(ctx: ScoreContext, nodes: np.ndarray, req: PodRequest) -> Scores:
    """Least CPU and device capacity left after placing (equal weights)."""
    s = ctx.state
    cpu = s.cpu_free[nodes].astype(np.float64) - req.cpu_milli
    gpu = s.gpu_free[nodes].sum(axis=1).astype(np.float64) - req.total_gpu_milli
    left = 0.5 * cpu / MAX_SPEC_CPU + 0.5 * gpu / MAX_SPEC_GPU
    return _trunc((1.0 - left) * MAX_SCORE), None


def score_packing(ctx: ScoreContext, nodes: np.ndarray, req: PodRequest) -> Scores:
    """Prefer shared devices already in use, then used nodes, then the smallest idle node."""
    if req.num_gpu == 0:
        return np.zeros(len(nodes)), None
    s = ctx.state
    free = s.gpu_free[nodes]
    count = s.gpu_count[nodes].astype(np.int64)
    full = (free == MILLI).sum(axis=1)
    idle_node = full == count
    score = np.maximum(MAX_SCORE // 3 - full, full).astype(np.float64)
    if req.is_share:
        best = np.where(free >= req.gpu_milli, free, MILLI + 1).min(axis=1)
        shared = np.maximum(MAX_SCORE - (best * 100 // MILLI) // 10, MAX_SCORE // 2)
        used = np.where(best == MILLI, max(MAX_SCORE // 2 - 1, MAX_SCORE // 3), shared)
    else:
        used = np.full(len(nodes), max(MAX_SCORE // 2 - req.num_gpu, MAX_SCORE // 3))
    return np.where(idle_node, score, used).astype(np.float64), None


def score_clustering(ctx: ScoreContext, nodes: np.ndarray, req: PodRequest) -> Scores:
    """Keep tasks of the same device-use kind together (Gandiva-style affinity)."""
    if req.num_gpu == 0:
        return np.zeros(len(nodes)), None
    s = ctx.state
    tags = ctx.tag_count[nodes]
    kinds = (tags > 0).sum(axis=1)
    same = tags[:, req.gpu_tag] > 0
    left = s.gpu_free[nodes].sum(axis=1).astype(np.int64)
    q = MAX_SCORE // 4
    base = q * (int(MAX_SPEC_GPU) - left) // int(MAX_SPEC_GPU)
    bonus = np.where(same, np.where(kinds == 1, 3 * q, 2 * q), np.where(kinds == 0, q, 0))
    return (base + bonus).astype(np.float64), None


def after_placing(
    free: np.ndarray, cpu: np.ndarray, req: PodRequest
) -> tuple[np.ndarray, np.ndarray]:
    """Node states after a non-share request (whole devices: the lowest-index idle ones)."""
    new = free.copy()
    if req.num_gpu:
        full = free == MILLI
        take = full & (np.cumsum(full, axis=1) <= req.num_gpu)
        new = new - MILLI * take
    return new, cpu - req.cpu_milli


def frag_growth(
    ctx: ScoreContext, nodes: np.ndarray, req: PodRequest, strand: float = 0.0
) -> Scores:
    """Growth of fragmentation (milli-units) when placing ``req``; per-device for shares.

    Returns (growth, device): growth has shape (M,) for whole/CPU requests, (M, G) for share
    requests (``inf`` where a device cannot take the share).
    """
    s, t = ctx.state, ctx.target
    before = ctx.frag(nodes)
    free, cpu, typ = s.gpu_free[nodes], s.cpu_free[nodes], s.gpu_type[nodes]
    mem = s.mem_free[nodes]
    if strand:
        before = before + strand * node_stranded(free, cpu, mem, t)  # type: ignore[arg-type]
    if not req.is_share:
        new, ncpu = after_placing(free, cpu, req)
        after = node_frag(new, ncpu, typ, t)  # type: ignore[arg-type]
        if strand:
            after += strand * node_stranded(new, ncpu, mem - req.memory_mib, t)  # type: ignore[arg-type]
        return after - before, None
    m, g = len(nodes), s.max_devices
    ok = (free >= req.gpu_milli) & (np.arange(g)[None, :] < s.gpu_count[nodes][:, None])
    # a device with the same free share as an earlier one of its node gives the same state:
    # evaluate only the first (argmax/argmin keep the first index among equals anyway)
    same = free[:, :, None] == free[:, None, :]
    ok &= ~np.tril(same, k=-1).any(axis=2)
    rows, devs = np.nonzero(ok)
    cand = free[rows].copy()
    cand[np.arange(len(rows)), devs] -= req.gpu_milli
    ncpu = cpu[rows] - req.cpu_milli
    after = node_frag(cand, ncpu, typ[rows], t)  # type: ignore[arg-type]
    if strand:
        after += strand * node_stranded(cand, ncpu, mem[rows] - req.memory_mib, t)  # type: ignore[arg-type]
    growth = np.full((m, g), np.inf)
    growth[rows, devs] = after - before[rows]
    return growth, ok


def fgd_scorer(scale: float = 1000.0, strand: float = 0.0) -> ScoreFn:
    """FGD: sigmoid of the fragmentation decrease (in units of ``scale`` milli), truncated to
    the artifact's integer 0..100 scale: growths within a few dozen milli tie."""

    def score(ctx: ScoreContext, nodes: np.ndarray, req: PodRequest) -> Scores:
        growth, ok = frag_growth(ctx, nodes, req, strand)
        with np.errstate(over="ignore"):
            q = _trunc(MAX_SCORE / (1.0 + np.exp(growth / scale)))
        if ok is None:
            return q, None
        q = np.where(ok, q, -1.0)
        dev = q.argmax(axis=1)
        return q[np.arange(len(nodes)), dev], dev

    return score


score_fgd = fgd_scorer(1000.0)
#: Ours (docs/placement.md): FGD's measure plus the idle device capacity a node strands for
#: lack of CPU or memory at the workload's own CPU- and memory-per-device rates.
score_fsgd = fgd_scorer(1000.0, strand=1.0)


def score_fgd_exact(ctx: ScoreContext, nodes: np.ndarray, req: PodRequest) -> Scores:
    """Least fragmentation growth, unquantised (ties only when growths are equal)."""
    growth, ok = frag_growth(ctx, nodes, req)
    if ok is None:
        return -growth, None
    dev = growth.argmin(axis=1)
    return -growth[np.arange(len(nodes)), dev], dev


SCORERS: Mapping[str, ScoreFn] = MappingProxyType(
    {
        "random": score_random,
        "dotprod": score_dotprod,
        "bestfit": score_bestfit,
        "packing": score_packing,
        "clustering": score_clustering,
        "fgd": score_fgd,
        "fsgd": score_fsgd,
        "fgd-exact": score_fgd_exact,
    }
)
