"""A small sparse MILP builder that hands the model to HiGHS (``scipy.optimize.milp``).

Variables and rows are appended with names (for debugging and explanations); ``solve`` builds
one CSC matrix and returns a ``Solution`` with HiGHS's status, objective, gap and dual bound.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csc_array

INF = math.inf


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


_STATUS = {0: "optimal", 1: "time_limit", 2: "infeasible", 3: "unbounded"}


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
        cons = []
        if self.num_rows:
            cons = [
                LinearConstraint(self.matrix(), np.asarray(self.row_lo), np.asarray(self.row_hi))
            ]
        t0 = time.perf_counter()
        res = milp(
            c,
            constraints=cons,
            integrality=np.asarray(self.integer),
            bounds=Bounds(np.asarray(self.lb), np.asarray(self.ub)),
            options={"time_limit": time_limit, "mip_rel_gap": mip_rel_gap, "presolve": True},
        )
        seconds = time.perf_counter() - t0
        status = _STATUS.get(res.status, "error")
        x = None if res.x is None else np.asarray(res.x)
        gap = getattr(res, "mip_gap", None)
        if gap is None and x is not None:
            gap = 0.0
        return Solution(
            status=status if x is not None or status != "time_limit" else "time_limit",
            x=x,
            objective=None if x is None else float(res.fun),
            gap=None if gap is None else float(gap),
            dual_bound=getattr(res, "mip_dual_bound", None),
            seconds=seconds,
            message=str(res.message),
        )
