"""A primal-dual interior-point method for the max-min share LP and its fill LP, exploiting
their structure: every row (job or group of jobs) touches only its own flavors, and rows are
coupled only through the F capacity constraints and the common minimum ``t``.

The LP (``G`` rows, ``F`` flavors, ``y[g, f] >= 0`` only where ``mask``)::

    min  cost_y . y  +  cost_t * t
    s.t. sum_f y[g, f]              <= 1            (share, one per row)
         t - sum_f coef[g, f] y[g, f] <= -t_fixed   (objective rows; ``t`` fixed when no column)
         sum_g w[g] y[g, f]         <= capacity[f]  (capacity)

Each Newton step solves the normal equations by block elimination: 2x2 blocks per row, an
``F x F`` Schur complement for capacity, and a rank-one update for the ``t`` column (Sherman-
Morrison). One iteration costs ``O(G F^2)`` arithmetic in a few NumPy calls, so the thousands of
distinct rows that make a general sparse solver slow (every job its own speeds) cost little.
Mehrotra's predictor-corrector, no crossover: like ECOS (Gavel's solver) it ends near the centre
of the optimal face. ``None`` when it does not converge; the caller then uses HiGHS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_ITER = 80
#: Primal and dual residuals (scaled problem) at which to stop.
TOL = 1e-8
#: Relative duality gap at which to stop (ECOS and IPX default to 1e-8; the shares need far less).
GAP = 1e-6
#: Accepted when the iterations stall or break down below it (the last such point is returned).
GAP_OK = 1e-4
#: Steps of iterative refinement on each Newton system (the block elimination loses digits as
#: the iterates approach the optimal face).
REFINE = 2
#: ... once the complementarity gap is below this (before, the plain solve is accurate enough).
REFINE_BELOW = 1e-2


@dataclass(frozen=True)
class ShareLP:
    """The structured LP above; ``with_t``: ``t`` is a variable (max-min), else fixed."""

    coef: np.ndarray  # (G, F) >= 0; 0 where the flavor is unusable
    w: np.ndarray  # (G,) capacity used per unit share (count * scale factor)
    capacity: np.ndarray  # (F,)
    cost_y: np.ndarray  # (G, F)
    cost_t: float
    with_t: bool
    t_fixed: float = 0.0


@dataclass(frozen=True)
class _Scaled:
    """The LP transposed to (F, G) (sums over flavors are then over a short leading axis),
    coefficients scaled to at most 1, capacity rows to right-hand side 1."""

    coef: np.ndarray  # (F, G)
    W: np.ndarray  # (F, G) w / capacity
    mf: np.ndarray | None  # (F, G) 1.0 where the variable exists; None: all exist
    cost_y: np.ndarray  # (F, G)
    cost_t: float
    with_t: bool
    rhs2: float  # right-hand side of the objective rows

    def masked(self, a: np.ndarray) -> np.ndarray:
        return a if self.mf is None else a * self.mf

    def ax(self, y: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row activities; ``y`` is zero where no variable exists."""
        r2 = -(self.coef * y).sum(axis=0)
        if self.with_t:
            r2 += t
        return y.sum(axis=0), r2, (self.W * y).sum(axis=1)

    def aty(self, l1: np.ndarray, l2: np.ndarray, l3: np.ndarray) -> np.ndarray:
        return self.masked(l1[None, :] - self.coef * l2[None, :] + self.W * l3[:, None])


@dataclass
class _Point:
    y: np.ndarray  # (F, G); 1.0 where no variable exists (never moves)
    t: float
    zy: np.ndarray
    zt: float
    s: tuple[np.ndarray, np.ndarray, np.ndarray]  # slacks of the three row blocks
    lam: tuple[np.ndarray, np.ndarray, np.ndarray]  # their duals


class _Kkt:
    """Normal equations ``(A D A^T + E) u = r`` at one point, factorised by blocks."""

    def __init__(self, lp: _Scaled, p: _Point, refine: int) -> None:
        self.lp = lp
        self.refine = refine
        self.e = tuple(si / li for si, li in zip(p.s, p.lam, strict=True))
        e1, e2, e3 = self.e
        d = lp.masked(p.y / p.zy)
        self.d = d
        self.dt = p.t / p.zt if lp.with_t else 0.0
        c, W = lp.coef, lp.W
        cd = c * d
        dsum = d.sum(axis=0)
        cdsum = cd.sum(axis=0)
        c2d = (c * cd).sum(axis=0)
        self.p11 = dsum + e1
        self.p12 = -cdsum
        self.p22 = c2d + e2
        # p11 p22 - p12^2 without cancellation: sum d * (d-weighted variance of c) + slack terms
        cbar = cdsum / np.maximum(dsum, 1e-300)
        var = (d * (c - cbar[None, :]) ** 2).sum(axis=0)
        self.det = dsum * var + e1 * c2d + e2 * dsum + e1 * e2
        q1 = W * d
        q2 = -c * q1
        self.pq1 = (self.p22 * q1 - self.p12 * q2) / self.det
        self.pq2 = (self.p11 * q2 - self.p12 * q1) / self.det
        self.q1, self.q2 = q1, q2
        r = (W * q1).sum(axis=1) + e3
        # Q^T P^-1 Q row by row: no BLAS call (its threads cost more than they save on
        # these thin products, and fight the other work on a busy machine).
        qpq = np.empty((len(r), len(r)))
        for f in range(len(r)):
            qpq[f] = (q1[f] * self.pq1 + q2[f] * self.pq2).sum(axis=1)
        self.schur = np.diag(r) - qpq
        if lp.with_t:
            ones = np.ones(len(dsum))
            self.at = self._solve0(np.zeros_like(ones), ones, np.zeros(len(r)))
            self.den = 1.0 / self.dt + self.at[1].sum()

    def _solve0(self, r1: np.ndarray, r2: np.ndarray, r3: np.ndarray) -> tuple:
        v1 = (self.p22 * r1 - self.p12 * r2) / self.det
        v2 = (self.p11 * r2 - self.p12 * r1) / self.det
        u3 = np.linalg.solve(self.schur, r3 - (self.q1 * v1 + self.q2 * v2).sum(axis=1))
        return (
            v1 - (self.pq1 * u3[:, None]).sum(axis=0),
            v2 - (self.pq2 * u3[:, None]).sum(axis=0),
            u3,
        )

    def _solve1(self, r: tuple) -> tuple:
        u = self._solve0(*r)
        if self.dt == 0.0:
            return u
        k = u[1].sum() / self.den
        return u[0] - k * self.at[0], u[1] - k * self.at[1], u[2] - k * self.at[2]

    def times(self, u: tuple) -> tuple:
        """``(A D A^T + E) u`` computed from A itself, for iterative refinement."""
        a = self.lp.ax(self.d * self.lp.aty(*u), self.dt * u[1].sum())
        return tuple(a[i] + self.e[i] * u[i] for i in range(3))

    def solve(self, r: tuple) -> tuple:
        u = self._solve1(r)
        for _ in range(self.refine):
            mu = self.times(u)
            du = self._solve1(tuple(r[i] - mu[i] for i in range(3)))
            u = tuple(u[i] + du[i] for i in range(3))
        return u


def _step(x: np.ndarray, dx: np.ndarray) -> float:
    """Largest step in [0, 1] keeping ``x + a dx >= 0``."""
    lo = float(dx.min())
    if lo >= 0:
        return 1.0
    neg = dx < 0
    return float(min(1.0, (-x[neg] / dx[neg]).min()))


def solve_share_lp(lp: ShareLP) -> tuple[np.ndarray, float] | None:
    """(y, t) at the optimum (``t`` = ``t_fixed`` when fixed), or ``None`` if not converged."""
    mask = lp.coef > 0
    G, F = lp.coef.shape
    if G == 0 or F == 0 or not mask.any(axis=1).all():
        return None
    cmax = float(lp.coef.max())
    cap = np.asarray(lp.capacity, dtype=np.float64)
    if cmax <= 0 or np.any(cap <= 0):
        return None
    cost_scale = max(float(np.abs(lp.cost_y).max()), abs(lp.cost_t), 1e-300)
    mT = np.ascontiguousarray(mask.T)
    s = _Scaled(
        coef=np.ascontiguousarray(np.where(mask, lp.coef / cmax, 0.0).T),
        W=np.ascontiguousarray(np.where(mask, lp.w[:, None] / cap[None, :], 0.0).T),
        mf=None if mT.all() else mT.astype(np.float64),
        cost_y=np.ascontiguousarray(np.where(mask, lp.cost_y / cost_scale, 0.0).T),
        cost_t=lp.cost_t / cost_scale,
        with_t=lp.with_t,
        rhs2=-lp.t_fixed / cmax,
    )
    out = _ipm(s, mT, G, F)
    if out is None:
        return None
    y, t = out
    return np.ascontiguousarray(y.T), (t * cmax if lp.with_t else lp.t_fixed)


@dataclass(frozen=True)
class _Residuals:
    rp: tuple  # primal residuals of the three row blocks
    rdy: np.ndarray  # dual residual of the shares
    rdt: float  # ... and of t


def _direction(
    s: _Scaled, p: _Point, kkt: _Kkt, it: _Residuals, rxz: np.ndarray, rxzt: float, rsl: tuple
) -> tuple:
    """Newton direction for complementarity targets x z -> rxz + x z, s l -> rsl + s l."""
    gy = kkt.d * (-it.rdy + rxz / p.y)
    gt = kkt.dt * (-it.rdt + rxzt / p.t) if s.with_t else 0.0
    g = s.ax(gy, gt)
    u = kkt.solve(tuple(it.rp[i] + g[i] + rsl[i] / p.lam[i] for i in range(3)))
    dy = kkt.d * (-it.rdy - s.aty(*u) + rxz / p.y)
    dzy = s.masked((rxz - p.zy * dy) / p.y)
    if s.with_t:
        dt = kkt.dt * (-it.rdt - u[1].sum() + rxzt / p.t)
        dzt = (rxzt - p.zt * dt) / p.t
    else:
        dt = dzt = 0.0
    ds = tuple((rsl[i] - p.s[i] * u[i]) / p.lam[i] for i in range(3))
    return dy, dt, dzy, dzt, ds, u


def _lengths(s: _Scaled, p: _Point, dy, dt, dzy, dzt, ds, dl) -> tuple[float, float]:
    ap = min(_step(p.y, dy), *(_step(p.s[i], ds[i]) for i in range(3)))
    ad = min(_step(p.zy, dzy), *(_step(p.lam[i], dl[i]) for i in range(3)))
    if s.with_t:
        ap = min(ap, -p.t / dt if dt < 0 else 1.0)
        ad = min(ad, -p.zt / dzt if dzt < 0 else 1.0)
    return ap, ad


def _ipm(s: _Scaled, mask: np.ndarray, G: int, F: int) -> tuple[np.ndarray, float] | None:
    nvar = int(mask.sum()) + (1 if s.with_t else 0)
    ncomp = nvar + 2 * G + F
    k = mask.sum(axis=0)
    b = (1.0, s.rhs2, 1.0)
    p = _Point(
        y=np.where(mask, 0.5 / k[None, :], 1.0),
        t=0.1 if s.with_t else 0.0,
        zy=np.ones((F, G)),
        zt=1.0,
        s=(np.ones(G), np.ones(G), np.ones(F)),
        lam=(np.ones(G), np.ones(G), np.ones(F)),
    )
    bnorm = 1.0 + np.sqrt(G + G * s.rhs2 * s.rhs2 + F)
    cnorm = 1.0 + float(np.sqrt((s.cost_y**2).sum() + s.cost_t**2))
    good: tuple[np.ndarray, float] | None = None
    for _ in range(MAX_ITER):
        ym = s.masked(p.y)
        a = s.ax(ym, p.t)
        rp = tuple(a[i] + p.s[i] - b[i] for i in range(3))
        rdy = s.cost_y + s.aty(*p.lam) - s.masked(p.zy)
        rdt = (s.cost_t + p.lam[1].sum() - p.zt) if s.with_t else 0.0
        xzy = s.masked(p.y * p.zy)
        xzt = p.t * p.zt if s.with_t else 0.0
        sl = tuple(p.s[i] * p.lam[i] for i in range(3))
        mu = (float(xzy.sum()) + xzt + sum(float(v.sum()) for v in sl)) / ncomp
        pobj = float((s.cost_y * ym).sum()) + s.cost_t * p.t
        dobj = -float(sum(p.lam[i].sum() * b[i] for i in range(3)))
        pres = np.sqrt(sum(float((r * r).sum()) for r in rp)) / bnorm
        dres = np.sqrt(float((rdy * rdy).sum()) + rdt * rdt) / cnorm
        gap = abs(pobj - dobj) / max(abs(pobj), abs(dobj), 1e-300)
        if pres < TOL and dres < TOL:
            if gap <= GAP:
                return ym, p.t
            if gap <= GAP_OK:
                good = (ym, p.t)
        elif good is not None and pres > 1e3 * TOL:  # breaking down: keep the good point
            return good
        if not np.isfinite(mu):
            return good
        kkt = _Kkt(s, p, REFINE if mu < REFINE_BELOW else 0)

        it = _Residuals(rp, rdy, rdt)
        aff = _direction(s, p, kkt, it, -xzy, -xzt, tuple(-v for v in sl))
        ap, ad = _lengths(s, p, *aff)
        dy, dt, dzy, dzt, ds, dl = aff
        mu_aff = (
            float(((p.y + ap * dy) * s.masked(p.zy + ad * dzy)).sum())
            + ((p.t + ap * dt) * (p.zt + ad * dzt) if s.with_t else 0.0)
            + sum(float(((p.s[i] + ap * ds[i]) * (p.lam[i] + ad * dl[i])).sum()) for i in range(3))
        ) / ncomp
        sm = (mu_aff / mu) ** 3 * mu
        cor = _direction(
            s,
            p,
            kkt,
            it,
            s.masked(sm - xzy - dy * dzy),
            sm - xzt - dt * dzt,
            tuple(sm - sl[i] - ds[i] * dl[i] for i in range(3)),
        )
        ap, ad = _lengths(s, p, *cor)
        ap, ad = 0.99 * ap, 0.99 * ad
        dy, dt, dzy, dzt, ds, dl = cor
        p = _Point(
            y=p.y + ap * dy,
            t=p.t + ap * dt,
            zy=p.zy + ad * dzy,
            zt=p.zt + ad * dzt,
            s=tuple(p.s[i] + ap * ds[i] for i in range(3)),
            lam=tuple(p.lam[i] + ad * dl[i] for i in range(3)),
        )
    return good
