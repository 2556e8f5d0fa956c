"""A thin, fast door to HiGHS: pass a column-wise LP as arrays, get the primal solution back.

Every LP policy builds its constraint matrix as CSC arrays (``start``, ``index``, ``value``)
with NumPy and calls ``solve``; nothing here knows about jobs or flavors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import highspy
import numpy as np

from computepool.solvers.highs import new_highs
from computepool.solvers.interior import solve_interior

INF = highspy.kHighsInf

#: HiGHS statuses no other algorithm can change (the model itself is malformed). Any other
#: status but "Optimal" gets the LP solved again another way: the LPs solved here are feasible
#: and bounded by construction (no shares is feasible, a share is at most 1), so "Unknown"
#: (IPX stopping short on a degenerate LP), a solve error or even an infeasibility verdict is
#: one algorithm's numerical trouble; on a truly infeasible LP the retries cost time only.
#: A retry is logged here (INFO): which status the first solve ended with and what solved it.
log = logging.getLogger("computepool.solvers")

FINAL = frozenset({"Optimal", "Model error", "Load error", "Empty"})
#: The other ways, in order: each a fresh solver with these options. IPX with crossover, the
#: dual simplex, then both without presolve (where a reduction is what went wrong).
FALLBACKS: tuple[dict[str, object], ...] = (
    {"solver": "ipm", "run_crossover": "on"},
    {"solver": "simplex"},
    {"solver": "simplex", "presolve": "off"},
    {"solver": "ipm", "run_crossover": "on", "presolve": "off"},
)
#: The same ways, the simplex first (where a vertex is the wanted fallback).
VERTEX_FIRST = (FALLBACKS[1], FALLBACKS[0], *FALLBACKS[2:])
#: IPX without crossover: a point near the centre of the optimal face.
IPM_CENTRE: dict[str, object] = {"solver": "ipm", "run_crossover": "off"}


class LPError(RuntimeError):
    """HiGHS did not return an optimal solution."""


@dataclass(frozen=True)
class LP:
    """``max/min cost @ x`` s.t. ``row_lo <= A x <= row_hi``, ``col_lo <= x <= col_hi``."""

    cost: np.ndarray
    col_lo: np.ndarray
    col_hi: np.ndarray
    row_lo: np.ndarray
    row_hi: np.ndarray
    start: np.ndarray  # (num_col + 1,) CSC column starts
    index: np.ndarray  # row index of each nonzero
    value: np.ndarray
    maximize: bool = True

    @property
    def num_col(self) -> int:
        return len(self.cost)

    @property
    def num_row(self) -> int:
        return len(self.row_lo)


@dataclass(frozen=True)
class Solution:
    x: np.ndarray
    objective: float
    optimal: bool
    status: str


def csc_from_triplets(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, num_col: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSC arrays from (row, col, value) triplets (duplicates are kept as separate entries)."""
    order = np.argsort(cols, kind="stable")
    counts = np.bincount(cols, minlength=num_col)
    start = np.zeros(num_col + 1, dtype=np.int32)
    np.cumsum(counts, out=start[1:])
    return start, rows[order].astype(np.int32), vals[order].astype(np.float64)


def _new_solver() -> object:
    return new_highs(bare=True)


def _run(lp: LP, options: dict[str, object]) -> tuple[Solution, object]:
    h = _new_solver()
    for key, val in options.items():
        h.setOptionValue(key, val)
    return solve_model(h, lp), h


def solve_robust(
    lp: LP,
    options: dict[str, object],
    clarabel: bool = True,
    fallbacks: tuple[dict[str, object], ...] = FALLBACKS,
) -> tuple[Solution, object | None]:
    """Solve with HiGHS and ``options``; when it does not end optimal (and the status is not
    ``FINAL``), solve again with each of ``fallbacks``, then (``clarabel``) with Clarabel, and
    return the first optimal solution with the HiGHS solver that found it (``None`` for
    Clarabel); if every way fails, the first solution, its status naming what was tried."""
    sol, h = _run(lp, options)
    if sol.status in FINAL:
        return sol, h
    tried = [sol.status]
    for alt in fallbacks:
        if alt == options:
            continue
        got, h2 = _run(lp, alt)
        if got.optimal:
            log.info("LP of %d rows: %s, solved by HiGHS %s", len(lp.row_lo), tried[0], alt)
            return got, h2
        tried.append(f"{'/'.join(str(v) for v in alt.values())}: {got.status}")
    if clarabel:
        got = solve_interior(
            lp.cost, lp.col_lo, lp.col_hi, lp.row_lo, lp.row_hi, lp.start, lp.index, lp.value,
            lp.maximize,
        )  # fmt: skip
        if got is not None:
            log.info("LP of %d rows: %s, solved by Clarabel", len(lp.row_lo), "; ".join(tried))
            return Solution(got[0], got[1], True, "Optimal"), None
        tried.append("clarabel: not solved")
    return replace(sol, status="; ".join(tried)), h


def solve(lp: LP, method: str = "simplex", crossover: bool = True) -> Solution:
    """Solve with HiGHS. ``method``: ``simplex`` (a vertex) or ``ipm`` (interior point; without
    crossover it returns a point near the centre of the optimal face, as ECOS does). A solve
    that does not end optimal is retried other ways (``solve_robust``)."""
    options: dict[str, object] = {"solver": method}
    if method == "ipm":
        options["run_crossover"] = "on" if crossover else "off"
    return solve_robust(lp, options)[0]


def solve_centre(lp: LP, engine: str = "highs") -> Solution:
    """A point near the centre of the optimal face (interior point, no crossover), from HiGHS'
    IPX (``highs``) or Clarabel (``clarabel``: several times faster on small LPs; HiGHS as
    fallback). The two stop at slightly different points of a degenerate face (~1e-5 in the
    shares), which is enough to move knife-edge outcomes such as Gavel's 8-GPU jobs. Where IPX
    stops short (big degenerate LPs) a vertex is returned instead (``solve_robust``)."""
    if engine == "clarabel":
        got = solve_interior(
            lp.cost, lp.col_lo, lp.col_hi, lp.row_lo, lp.row_hi, lp.start, lp.index, lp.value,
            lp.maximize,
        )  # fmt: skip
        if got is not None:
            return Solution(got[0], got[1], True, "Optimal")
    return solve_robust(lp, IPM_CENTRE, engine != "clarabel")[0]


def solve_with_duals(lp: LP) -> tuple[Solution, np.ndarray]:
    """Interior point without crossover (a strictly complementary pair, so a row's dual is
    non-zero exactly when the row binds at every optimum); returns the row duals too. Where
    IPX does not end optimal, the duals come from the fallback that solved it
    (``solve_robust``, HiGHS only): a vertex's duals, non-zero only on rows that bind at every
    optimum too, though maybe not on all of them."""
    sol, h = solve_robust(lp, IPM_CENTRE, clarabel=False)
    duals = np.asarray(h.getSolution().row_dual, dtype=np.float64)
    if len(duals) != lp.num_row:
        duals = np.zeros(lp.num_row)
    return sol, duals


class Session:
    """One HiGHS model kept between solves, for a sequence of LPs that differ in one column
    (the simplex restarts from the previous basis). A solve that does not end optimal is
    retried on the current LP from scratch (``solve_robust``); the session keeps its model."""

    def __init__(self, lp: LP, method: str = "simplex") -> None:
        self._h = _new_solver()
        self._h.setOptionValue("solver", method)
        if method == "simplex":
            self._h.setOptionValue("simplex_strategy", 4)  # primal: restarts well after a change
        self._lp = lp
        self._changed: dict[tuple[int, int], float] = {}
        self.first = self._checked(solve_model(self._h, lp))

    def set_column(self, col: int, rows: np.ndarray, values: np.ndarray) -> None:
        for r, v in zip(rows.tolist(), values.tolist(), strict=True):
            self._h.changeCoeff(int(r), col, float(v))
            self._changed[(int(r), col)] = float(v)

    def run(self) -> Solution:
        self._h.run()
        return self._checked(_solution(self._h, self._lp.num_col))

    def current(self) -> LP:
        """The LP as changed so far."""
        lp = self._lp
        if not self._changed:
            return lp
        cols = np.repeat(np.arange(lp.num_col), np.diff(lp.start))
        new = np.array(list(self._changed), dtype=np.int64).reshape(-1, 2)
        key = np.asarray(lp.index, dtype=np.int64) * lp.num_col + cols
        keep = ~np.isin(key, new[:, 0] * lp.num_col + new[:, 1])
        rows = np.concatenate([lp.index[keep], new[:, 0]])
        cc = np.concatenate([cols[keep], new[:, 1]])
        vals = np.concatenate([lp.value[keep], list(self._changed.values())])
        start, index, value = csc_from_triplets(rows, cc, vals, lp.num_col)
        return replace(lp, start=start, index=index, value=value)

    def _checked(self, sol: Solution) -> Solution:
        if sol.status in FINAL:
            return sol
        return solve_robust(self.current(), FALLBACKS[1])[0]


def _solution(h: object, num_col: int) -> Solution:
    status = h.getModelStatus()
    optimal = status == highspy.HighsModelStatus.kOptimal
    x = np.asarray(h.getSolution().col_value, dtype=np.float64)
    if len(x) != num_col:
        x = np.zeros(num_col)
    obj = float(h.getInfo().objective_function_value) if optimal else float("nan")
    return Solution(x, obj, optimal, h.modelStatusToString(status))


def solve_model(h: object, lp: LP) -> Solution:
    model = highspy.HighsLp()
    model.num_col_ = lp.num_col
    model.num_row_ = lp.num_row
    model.col_cost_ = np.asarray(lp.cost, dtype=np.float64)
    model.col_lower_ = np.asarray(lp.col_lo, dtype=np.float64)
    model.col_upper_ = np.asarray(lp.col_hi, dtype=np.float64)
    model.row_lower_ = np.asarray(lp.row_lo, dtype=np.float64)
    model.row_upper_ = np.asarray(lp.row_hi, dtype=np.float64)
    model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    model.a_matrix_.start_ = np.asarray(lp.start, dtype=np.int32)
    model.a_matrix_.index_ = np.asarray(lp.index, dtype=np.int32)
    model.a_matrix_.value_ = np.asarray(lp.value, dtype=np.float64)
    model.sense_ = highspy.ObjSense.kMaximize if lp.maximize else highspy.ObjSense.kMinimize
    h.passModel(model)
    h.run()
    return _solution(h, lp.num_col)
