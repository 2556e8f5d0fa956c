"""Pieces every time-share LP policy shares: weights, identical-row groups, the equal-share
reference throughput, and the max-min LP over effective throughput.

Effective throughput of row ``m`` under allocation ``x`` is ``sum_f T[m, f] * x[m, f]`` where
``x[m, f]`` is the fraction of wall-clock time ``m`` holds flavor ``f`` (Gavel, OSDI'20).
Constraints shared by all policies: ``x >= 0``; ``sum_f x[m, f] <= 1``;
``sum_m scale_factor[m] * x[m, f] <= capacity[f]``; ``x[m, f] = 0`` where ``f`` is infeasible.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from computepool.model.allocation import Allocation
from computepool.policies.base import PolicyInput
from computepool.policies.lp import (
    INF,
    LP,
    LPError,
    Solution,
    csc_from_triplets,
    solve,
    solve_centre,
    solve_with_duals,
)
from computepool.solvers.interior import BIG, CscLists, solve_conic
from computepool.solvers.max_min_ipm import ShareLP, solve_share_lp

#: From this many share variables on, ``max_min_lp`` (interior point) uses the structured
#: solver (``solvers.max_min_ipm``): HiGHS' general IPM is 3-10x slower on thousands of
#: distinct rows; below it HiGHS is faster (per-call overhead) and stays the reference.
STRUCTURED_MIN_VARS = 3000
#: The fill LP's floor below the minimum on the structured path: 1e-4 relative (HiGHS' path
#: uses 1e-6); a thinner sliver of feasible points slows an interior point without a basis.
STRUCTURED_FILL_SLACK = 1e-4


def row_weights(inp: PolicyInput) -> np.ndarray:
    """Per-row weight: the job's weight times its tenant's (``extras["tenant_weight"]``)."""
    w = np.asarray(inp.weight, dtype=np.float64)
    tw = inp.extras.get("tenant_weight")
    if tw is not None:
        tw = np.asarray(tw, dtype=np.float64)
        w = w * tw[inp.tenant]
    if np.any(~np.isfinite(w)) or np.any(w <= 0):
        raise ValueError("job and tenant weights must be finite and > 0")
    return w


def throughput_view(inp: PolicyInput, aware: bool) -> np.ndarray:
    """(n, F) rates the policy optimises over: measured (aware) or 1.0 on every feasible flavor
    (agnostic: the same policy composed with a flat throughput table)."""
    return inp.throughput if aware else inp.feasible.astype(np.float64)


@dataclass(frozen=True)
class Groups:
    """Rows that are interchangeable for a policy share one LP row (``count`` of them)."""

    inverse: np.ndarray  # (n,) group of each row
    first: np.ndarray  # (G,) a representative row per group
    count: np.ndarray  # (G,)


def group_rows(*keys: np.ndarray) -> Groups:
    """Group rows whose every key column is equal."""
    n = len(keys[0])
    if n == 0:
        z = np.zeros(0, dtype=np.int64)
        return Groups(z, z, z)
    cols = [np.asarray(k, dtype=np.float64) for k in keys]
    # Groups in lexicographic order of their keys, each represented by its first row: what
    # ``np.unique(axis=0, return_index=True)`` gives, without its structured-array sort (the
    # simulator groups rows at every allocation).
    order = np.lexsort(cols[::-1])
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for c in cols:
        sc = c[order]
        new[1:] |= sc[1:] != sc[:-1]
    starts = np.flatnonzero(new)
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    count = np.diff(np.append(starts, n))
    return Groups(inverse, order[starts].astype(np.int64), count.astype(np.int64))


def singleton_groups(n: int) -> Groups:
    idx = np.arange(n, dtype=np.int64)
    return Groups(idx, idx, np.ones(n, dtype=np.int64))


def equal_share_fraction(
    weight: np.ndarray, scale_factor: np.ndarray, total_capacity: float
) -> np.ndarray:
    """Total time share per row under heterogeneity-agnostic weighted max-min fairness.

    The agnostic max-min LP (every throughput 1) maximises ``min_m sf_m x_m / w_m`` with
    ``x_m <= 1`` and ``sum_m sf_m x_m <= total``: water-filling gives
    ``x_m = min(1, lam * w_m / sf_m)`` with ``lam`` chosen to fill the pool.
    """
    sf = np.asarray(scale_factor, dtype=np.float64)
    if len(sf) == 0:
        return np.zeros(0)
    if sf.sum() <= total_capacity:
        return np.ones(len(sf))
    bp = sf / weight  # lam at which row m saturates at share 1
    order = np.argsort(bp)
    bp_s, sf_s, w_s = bp[order], sf[order], weight[order]
    # filled(lam) = sum_{bp<=lam} sf + lam * sum_{bp>lam} w; find the segment containing total.
    sf_cum = np.concatenate([[0.0], np.cumsum(sf_s)])
    w_tail = np.concatenate([np.cumsum(w_s[::-1])[::-1], [0.0]])
    filled_at_bp = sf_cum[:-1] + bp_s * w_tail[:-1]  # at lam = bp_s[k], rows < k saturated
    k = int(np.searchsorted(filled_at_bp, total_capacity, side="right"))
    lam = (total_capacity - sf_cum[k]) / w_tail[k] if w_tail[k] > 0 else bp_s[-1]
    return np.minimum(1.0, lam * weight / sf)


def even_split_throughput(inp: PolicyInput, rates: np.ndarray) -> np.ndarray:
    """Effective throughput of each row if it ran all the time, spread over its feasible flavors
    in proportion to capacity: LAS's normaliser (Gavel's ``ProportionalPolicy``, whose rows
    always sum to 1 whatever the number of jobs and their scale factors).

    Independent of the scale factor on purpose: the LP's coefficient is
    ``sf * rate / even_split``, so a gang's normalised throughput grows with its size exactly as
    in Gavel. Dividing by the water-filled equal share instead (``isolated_throughput``, which
    shrinks as ``1 / sf`` once the pool is oversubscribed) multiplies a gang's coefficient by
    ``sf`` once more: the LP then sees 8-GPU jobs as already well served and gives them a small
    share, and under Gavel's round order they starve (Gavel Fig. 9).
    """
    cap = inp.capacity.astype(np.float64)
    feas_cap = inp.feasible * cap[None, :]
    denom = feas_cap.sum(axis=1)
    return (rates * feas_cap).sum(axis=1) / np.maximum(denom, 1e-12)


def isolated_throughput(inp: PolicyInput, rates: np.ndarray) -> np.ndarray:
    """Effective throughput of each row under the unweighted agnostic equal share ("isolated" in
    Gavel): its max-min total share, spread over its feasible flavors in proportion to capacity.

    Unweighted on purpose: Gavel feeds the weights into this reference too and then divides by
    them again, so shares move with the square of the weights; here they move in proportion.
    With all weights 1 (the Gavel experiments) both are the same.
    """
    cap = inp.capacity.astype(np.float64)
    x_total = equal_share_fraction(np.ones(inp.n), inp.scale_factor, float(cap.sum()))
    return x_total * even_split_throughput(inp, rates)


def agnostic_centre(inp: PolicyInput, weight: np.ndarray) -> np.ndarray | None:
    """(n, F) centre of the agnostic max-min LP's optimal face, when it has a closed form.

    With every throughput 1 the LP only fixes each row's *total* share (water-filling,
    ``equal_share_fraction``); how a row splits it over flavors is free. The centre an interior
    point solver returns (Gavel's ECOS) splits it in proportion to capacity over the row's legal
    flavors; that split is optimal whenever it fits every flavor's capacity, which this checks
    (``None`` otherwise: masks or gangs that crowd one flavor; solve the LP then).
    """
    cap = inp.capacity.astype(np.float64)
    sf = inp.scale_factor.astype(np.float64)
    feas_cap = inp.feasible * cap[None, :]
    denom = feas_cap.sum(axis=1)
    if inp.n == 0 or np.any(denom <= 0):
        return None
    total = equal_share_fraction(weight, sf, float(cap.sum()))
    x = total[:, None] * feas_cap / denom[:, None]
    usage = (x * sf[:, None]).sum(axis=0)
    if np.any(usage > cap * (1.0 + 1e-9) + 1e-9):
        return None
    return x


@dataclass(frozen=True)
class MaxMinResult:
    share: np.ndarray  # (G, F) per-row share of each group
    value: float  # the optimal minimum


def _base_triplets(
    feas: np.ndarray, count: np.ndarray, sf: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Variables (g, f) for feasible pairs; rows 0..G-1: sum_f y <= 1; rows G..G+F-1: capacity."""
    G, F = feas.shape
    g, f = np.nonzero(feas)
    k = len(g)
    col = np.arange(k)
    rows = np.concatenate([g, G + f])
    cols = np.concatenate([col, col])
    vals = np.concatenate([np.ones(k), (count * sf)[g].astype(np.float64)])
    return g, f, rows, cols, vals


@dataclass(frozen=True)
class MaxMinModel:
    lp: LP
    g: np.ndarray  # group of each share variable
    f: np.ndarray  # flavor of each share variable
    t_col: int
    obj_row0: int  # first of the G "effective throughput >= t" rows
    shape: tuple[int, int]

    def shares(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros(self.shape)
        out[self.g, self.f] = np.clip(x[: len(self.g)], 0.0, 1.0)
        return out


def max_min_model(
    coef: np.ndarray,
    count: np.ndarray,
    scale_factor: np.ndarray,
    capacity: np.ndarray,
    t_coef: np.ndarray | None = None,
) -> MaxMinModel:
    """``max t`` s.t. ``sum_f coef[g, f] * y[g, f] >= t_coef[g] * t`` for every group, plus the base
    constraints with ``count[g]`` rows behind each group. ``coef == 0`` marks an unusable flavor."""
    G, F = coef.shape
    feas = coef > 0
    g, f, rows, cols, vals = _base_triplets(feas, count, scale_factor)
    k = len(g)
    tc = np.ones(G) if t_coef is None else np.asarray(t_coef, dtype=np.float64)
    rows = np.concatenate([rows, G + F + g, G + F + np.arange(G)])
    cols = np.concatenate([cols, np.arange(k), np.full(G, k)])
    vals = np.concatenate([vals, coef[g, f], -tc])
    start, index, value = csc_from_triplets(rows, cols, vals, k + 1)
    cost = np.zeros(k + 1)
    cost[k] = 1.0
    row_lo = np.concatenate([np.full(G + F, -INF), np.zeros(G)])
    row_hi = np.concatenate([np.ones(G), capacity.astype(np.float64), np.full(G, INF)])
    lp = LP(cost, np.zeros(k + 1), np.full(k + 1, INF), row_lo, row_hi, start, index, value)
    return MaxMinModel(lp, g, f, k, G + F, (G, F))


def max_min_conic(
    m: MaxMinModel, lp: LP, fixed_t: float | None = None
) -> tuple[CscLists, np.ndarray, int] | None:
    """``solvers.interior.conic_form`` of ``lp``, the max-min LP of ``m`` (``fixed_t``: its
    fill LP, ``t`` fixed there), built from the structure ``max_min_model`` gives it rather than
    found from its bounds: the same arrays (tests compare the two), without the generic passes.
    ``None`` when ``lp`` does not have that structure (a bound that is not finite where the
    model puts one, or ``t`` with coefficients other than one per group)."""
    k = m.t_col
    G, F = m.shape
    R = G + F  # the rows with an upper bound (y-sums, capacity); then G objective rows
    if (
        len(lp.value) != 3 * k + G
        or not np.all(np.abs(lp.row_hi[:R]) < BIG)
        or not np.all(lp.row_lo[:R] <= -BIG)
        or not np.all(np.abs(lp.row_lo[R:]) < BIG)
        or not np.all(lp.row_hi[R:] >= BIG)
        or not np.all(np.abs(lp.col_lo[:k]) < BIG)
        or not np.all(lp.col_hi[:k] >= BIG)
        or (fixed_t is None and not (abs(lp.col_lo[k]) < BIG <= lp.col_hi[k]))
        or (fixed_t is not None and not (lp.col_lo[k] == lp.col_hi[k] == fixed_t))
    ):
        return None
    s = 0 if fixed_t is None else 1  # the fixed t is row 0 (the zero cone)
    rows_lp = lp.index[: 3 * k].reshape(k, 3).astype(np.int64) + s
    vals_lp = lp.value[: 3 * k].reshape(k, 3)
    # a share column: y-sum and capacity rows as they are, its objective row negated
    # (``-A x <= -lo``), then its own ``-y <= -lo`` row
    rows = np.empty((k, 4), dtype=np.int64)
    rows[:, :3] = rows_lp
    rows[:, 3] = R + G + s + np.arange(k)
    vals = np.empty((k, 4))
    vals[:, :2] = vals_lp[:, :2]
    vals[:, 2] = -vals_lp[:, 2]
    vals[:, 3] = -1.0
    t_rows = lp.index[3 * k :].astype(np.int64) + s
    t_vals = -lp.value[3 * k :]
    if fixed_t is None:
        t_rows = np.append(t_rows, R + G + k)
        t_vals = np.append(t_vals, -1.0)
        b_head: list[np.ndarray] = []
        lo_cols = lp.col_lo
    else:
        t_rows = np.concatenate([[0], t_rows])
        t_vals = np.concatenate([[1.0], t_vals])
        b_head = [np.array([fixed_t], dtype=np.float64)]
        lo_cols = lp.col_lo[:k]
    indptr = np.concatenate([np.arange(0, 4 * k + 1, 4), [4 * k + len(t_rows)]])
    A = CscLists(
        np.concatenate([vals.ravel(), t_vals]).tolist(),
        np.concatenate([rows.ravel(), t_rows]).tolist(),
        indptr.tolist(),
        4 * k + len(t_rows),
        (R + G + k + 1, k + 1),
    )
    b = np.concatenate([*b_head, lp.row_hi[:R], -lp.row_lo[R:], -lo_cols]).astype(np.float64)
    return A, b, s


def clarabel_centre(m: MaxMinModel, lp: LP, fixed_t: float | None = None) -> Solution:
    """``solve_centre(lp, "clarabel")`` with the conic form from ``max_min_conic``."""
    form = max_min_conic(m, lp, fixed_t)
    if form is not None:
        q = np.asarray(lp.cost, dtype=np.float64)
        got = solve_conic(-q if lp.maximize else q, *form)
        if got is not None:
            return Solution(got[0], -got[1] if lp.maximize else got[1], True, "Optimal")
        return solve_centre(lp, "highs")  # what solve_centre falls back to
    return solve_centre(lp, "clarabel")


def max_min_lp(
    coef: np.ndarray,
    count: np.ndarray,
    scale_factor: np.ndarray,
    capacity: np.ndarray,
    method: str = "ipm",
    fill: bool = False,
) -> MaxMinResult:
    """Solve ``max_min_model``; ``fill``: a second LP keeps the minimum (within 1e-6 relative)
    and maximises the sum of the rows' objectives, so capacity the bottleneck rows cannot use
    is not left idle."""
    G, F = coef.shape
    if G == 0:
        return MaxMinResult(np.zeros((0, F)), 0.0)
    centre = method in ("ipm", "clarabel")
    if centre and int((coef > 0).sum()) >= STRUCTURED_MIN_VARS:
        res = structured_max_min(coef, count, scale_factor, capacity, fill)
        if res is not None:
            return res
    m = max_min_model(coef, count, scale_factor, capacity)
    engine = "clarabel" if method == "clarabel" else "highs"
    if engine == "clarabel":
        sol = clarabel_centre(m, m.lp)
    else:
        sol = solve_centre(m.lp, engine) if centre else solve(m.lp, method=method)
    if not sol.optimal:
        raise LPError(f"max-min LP: {sol.status}")
    t = float(sol.x[m.t_col])
    x = sol.x
    if fill and t > 0:
        lp = m.lp
        k = m.t_col
        cost2 = np.zeros(k + 1)
        cost2[:k] = count[m.g] * coef[m.g, m.f] / t
        lo, hi = lp.col_lo.copy(), lp.col_hi.copy()
        lo[k] = hi[k] = t * (1.0 - 1e-6)
        lp2 = LP(cost2, lo, hi, lp.row_lo, lp.row_hi, lp.start, lp.index, lp.value)
        if engine == "clarabel":
            sol2 = clarabel_centre(m, lp2, float(lo[k]))
        else:
            sol2 = solve_centre(lp2, engine) if centre else solve(lp2, method=method)
        if sol2.optimal:
            x = sol2.x
    return MaxMinResult(m.shares(x), t)


def structured_max_min(
    coef: np.ndarray,
    count: np.ndarray,
    scale_factor: np.ndarray,
    capacity: np.ndarray,
    fill: bool,
) -> MaxMinResult | None:
    """``max_min_lp`` by the structured interior point (``None``: it did not converge, or a row
    has no usable flavor; the caller then solves with HiGHS)."""
    w = np.asarray(count, dtype=np.float64) * np.asarray(scale_factor, dtype=np.float64)
    cap = np.asarray(capacity, dtype=np.float64)
    if np.any(cap <= 0) or not (coef > 0).any(axis=1).all():
        return None
    zero = np.zeros(coef.shape)
    first = solve_share_lp(ShareLP(coef, w, cap, zero, -1.0, with_t=True))
    if first is None:
        return None
    y, t = first
    if fill and t > 0:
        cost = -(np.asarray(count, dtype=np.float64)[:, None] * coef) / t
        floor = t * (1.0 - STRUCTURED_FILL_SLACK)
        second = solve_share_lp(ShareLP(coef, w, cap, cost, 0.0, with_t=False, t_fixed=floor))
        if second is None:
            return None
        y = second[0]
    return MaxMinResult(np.clip(y, 0.0, 1.0), t)


def lex_max_min_lp(
    coef: np.ndarray,
    count: np.ndarray,
    scale_factor: np.ndarray,
    capacity: np.ndarray,
    method: str = "ipm",
    fill: bool = False,
) -> MaxMinResult:
    """Lexicographic max-min (water-filling): maximise the smallest objective, fix the rows that
    bind there (non-zero dual on their objective row), maximise the smallest of the rest, and so
    on. Same minimum as ``max_min_lp``; every row as high as the ones below it allow.
    ``method``/``fill`` are accepted for the caller's signature and not used."""
    G, F = coef.shape
    if G == 0:
        return MaxMinResult(np.zeros((0, F)), 0.0)
    frozen = np.zeros(G, dtype=bool)
    level = np.zeros(G)
    first: float | None = None
    x = None
    for _ in range(G):
        m = max_min_model(coef, count, scale_factor, capacity, t_coef=(~frozen).astype(float))
        lo = m.lp.row_lo.copy()
        obj = m.obj_row0 + np.arange(G)
        lo[obj] = np.where(frozen, level * (1.0 - 1e-7), 0.0)
        sol, duals = solve_with_duals(replace(m.lp, row_lo=lo))
        if not sol.optimal:
            if x is None:
                raise LPError(f"lexicographic max-min LP: {sol.status}")
            break
        t, x = float(sol.x[m.t_col]), sol.x
        first = t if first is None else first
        d = np.abs(duals[obj])
        binds = ~frozen & (d > 1e-7 * max(float(d.max()), 1e-12))
        if not binds.any():
            binds = ~frozen
        frozen |= binds
        level[binds] = t
        if frozen.all():
            break
    return MaxMinResult(m.shares(x), float(first))


def expand(share: np.ndarray, groups: Groups) -> Allocation:
    """Per-row allocation from per-group shares."""
    return Allocation.from_dense(share[groups.inverse])
