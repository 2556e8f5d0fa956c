"""A small sparse MILP builder that hands the model to HiGHS (``highspy``).

``highspy`` rather than ``scipy.optimize.milp``: SciPy bundles an older HiGHS whose primal
heuristics took 20-50x longer on our planner models (benchmarks/plan_solve.py).

Variables and rows are appended with names (for debugging and explanations); ``solve`` builds
one CSC matrix and returns a ``Solution`` with HiGHS's status, objective, gap and dual bound.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import highspy
import numpy as np
from scipy.sparse import csc_array

from computepool.solvers.highs import new_highs

INF = math.inf
#: HiGHS's random seed for every solve (its default, set explicitly: plans are reproducible).
SEED = 0
#: HiGHS's share of MIP effort spent in primal heuristics (default 0.05). The planner's binaries
#: (minimum orders, chip families, fabrics) make integer schedules hard to find; 0.3 cut the
#: solve time 2.6-3x on benchmarks/plan_solve.py (0.6 was no faster).
HEURISTIC_EFFORT = 0.3


@dataclass(frozen=True)
class Solution:
    #: "optimal", "time_limit", "infeasible", "unbounded" or "error".
    status: str
    x: np.ndarray | None
    objective: float | None
    #: Relative MIP gap HiGHS reports (0 for an LP or a proven optimum).
    gap: float | None
    dual_bound: float | None
    seconds: float
    message: str = ""

    @property
    def feasible(self) -> bool:
        return self.x is not None


_STATUS = {
    highspy.HighsModelStatus.kOptimal: "optimal",
    highspy.HighsModelStatus.kTimeLimit: "time_limit",
    highspy.HighsModelStatus.kInfeasible: "infeasible",
    # every cost is non-negative, so "unbounded or infeasible" can only be infeasible
    highspy.HighsModelStatus.kUnboundedOrInfeasible: "infeasible",
    highspy.HighsModelStatus.kUnbounded: "unbounded",
}
#: ``HighsInfo.primal_solution_status`` of a feasible point.
FEASIBLE_POINT = 2


def quiet_highs() -> highspy.Highs:
    """A ``Highs`` instance without its banner, sharing the process-wide thread settings."""
    return new_highs()


@dataclass
class Model:
    """Columns (variables) and rows (constraints) of one MILP, minimised."""

    lb: list[float] = field(default_factory=list)
    ub: list[float] = field(default_factory=list)
    integer: list[int] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    _ri: list[int] = field(default_factory=list)
    _ci: list[int] = field(default_factory=list)
    _v: list[float] = field(default_factory=list)
    row_lo: list[float] = field(default_factory=list)
    row_hi: list[float] = field(default_factory=list)
    row_names: list[str] = field(default_factory=list)

    @property
    def num_vars(self) -> int:
        return len(self.lb)

    @property
    def num_rows(self) -> int:
        return len(self.row_lo)

    @property
    def num_integer(self) -> int:
        return int(sum(self.integer))

    def var(
        self, name: str, lb: float = 0.0, ub: float = INF, integer: bool = False, cost: float = 0.0
    ) -> int:
        self.lb.append(lb)
        self.ub.append(ub)
        self.integer.append(1 if integer else 0)
        self.cost.append(cost)
        self.names.append(name)
        return len(self.lb) - 1

    def add_cost(self, var: int, amount: float) -> None:
        self.cost[var] += amount

    def row(
        self, name: str, terms: Iterable[tuple[int, float]], lo: float = -INF, hi: float = INF
    ) -> int:
        r = len(self.row_lo)
        for c, v in terms:
            if v != 0.0:
                self._ri.append(r)
                self._ci.append(c)
                self._v.append(v)
        self.row_lo.append(lo)
        self.row_hi.append(hi)
        self.row_names.append(name)
        return r

    def matrix(self) -> csc_array:
        return csc_array(
            (np.asarray(self._v), (np.asarray(self._ri), np.asarray(self._ci))),
            shape=(self.num_rows, self.num_vars),
        )

    def row_activity(self, x: np.ndarray) -> np.ndarray:
        return self.matrix() @ x

    def solve(
        self, time_limit: float = 60.0, mip_rel_gap: float = 1e-4, cost: np.ndarray | None = None
    ) -> Solution:
        c = np.asarray(self.cost if cost is None else cost, dtype=float)
        h = quiet_highs()
        h.setOptionValue("time_limit", float(time_limit))
        h.setOptionValue("mip_rel_gap", float(mip_rel_gap))
        # Same input, same plan: a fixed seed (the thread count is fixed in computepool.solvers.highs).
        h.setOptionValue("random_seed", SEED)
        h.setOptionValue("mip_heuristic_effort", HEURISTIC_EFFORT)
        h.passModel(self._highs_lp(c))
        t0 = time.perf_counter()
        h.run()
        seconds = time.perf_counter() - t0
        status = h.getModelStatus()
        info = h.getInfo()
        has_x = info.primal_solution_status == FEASIBLE_POINT
        x = np.asarray(h.getSolution().col_value) if has_x else None
        mip = self.num_integer > 0
        gap = float(info.mip_gap) if mip and has_x else (0.0 if has_x else None)
        return Solution(
            status=_STATUS.get(status, "error"),
            x=x,
            objective=float(info.objective_function_value) if has_x else None,
            gap=gap,
            dual_bound=float(info.mip_dual_bound) if mip else None,
            seconds=seconds,
            message=h.modelStatusToString(status),
        )

    def _highs_lp(self, c: np.ndarray) -> highspy.HighsLp:
        a = self.matrix().tocsc()
        lp = highspy.HighsLp()
        lp.num_col_ = self.num_vars
        lp.num_row_ = self.num_rows
        lp.col_cost_ = c
        lp.col_lower_ = np.asarray(self.lb, dtype=float)
        lp.col_upper_ = np.asarray(self.ub, dtype=float)
        lp.row_lower_ = np.asarray(self.row_lo, dtype=float)
        lp.row_upper_ = np.asarray(self.row_hi, dtype=float)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = a.indptr
        lp.a_matrix_.index_ = a.indices
        lp.a_matrix_.value_ = a.data
        kinds = (highspy.HighsVarType.kContinuous, highspy.HighsVarType.kInteger)
        lp.integrality_ = [kinds[i] for i in self.integer]
        return lp
