"""A policy LP on which HiGHS' first algorithm stops without an optimum ("Unknown": IPX on
some degenerate LPs, seen in Gavel Fig. 9 runs of ``las-lex``) is solved another way instead
of ending the round (and a simulation) with ``LPError``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from computepool.policies import lp as lpmod
from computepool.policies.lp import LPError, Solution
from computepool.policies.shares import lex_max_min_lp, max_min_lp, max_min_model


def _instance(seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    coef = rng.uniform(0.2, 3.0, (12, 3))
    coef[rng.random((12, 3)) < 0.2] = 0.0
    coef[:, 0] = np.maximum(coef[:, 0], 0.1)  # every row has a usable flavor
    count = rng.integers(1, 4, 12)
    scale = rng.choice([1.0, 2.0, 4.0], 12)
    return coef, count, scale, np.array([6.0, 6.0, 4.0])


def _levels(coef: np.ndarray, shares: np.ndarray) -> np.ndarray:
    return np.sort((coef * shares).sum(axis=1))


class _FailFirst:
    """``solve_model`` whose first ``n`` calls end with ``status`` instead of solving."""

    def __init__(self, n: int, status: str = "Unknown") -> None:
        self.n, self.status, self.failed = n, status, 0
        self.real = lpmod.solve_model

    def __call__(self, h: object, lp: lpmod.LP) -> Solution:
        if self.failed < self.n:
            self.failed += 1
            return Solution(np.zeros(lp.num_col), float("nan"), False, self.status)
        return self.real(h, lp)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("status", ["Unknown", "Solve error"])
def test_lexicographic_lp_survives_a_first_solve_without_optimum(monkeypatch, seed, status):
    coef, count, scale, cap = _instance(seed)
    direct = lex_max_min_lp(coef, count, scale, cap)
    fail = _FailFirst(1, status)
    monkeypatch.setattr(lpmod, "solve_model", fail)
    got = lex_max_min_lp(coef, count, scale, cap)
    assert fail.failed == 1
    assert got.value == pytest.approx(direct.value, rel=1e-6)
    # the same water-filling levels (the fallback's vertex duals may freeze rows in other
    # steps, not at other levels)
    np.testing.assert_allclose(
        _levels(coef, got.share), _levels(coef, direct.share), rtol=1e-5, atol=1e-7
    )


@pytest.mark.parametrize("method", ["ipm", "simplex"])
def test_max_min_lp_survives_a_first_solve_without_optimum(monkeypatch, method):
    coef, count, scale, cap = _instance(7)
    direct = max_min_lp(coef, count, scale, cap, method=method)
    fail = _FailFirst(1)
    monkeypatch.setattr(lpmod, "solve_model", fail)
    got = max_min_lp(coef, count, scale, cap, method=method)
    assert fail.failed == 1
    assert got.value == pytest.approx(direct.value, rel=1e-6)


def test_a_retry_is_logged_with_the_status_and_what_solved_it(monkeypatch, caplog):
    coef, count, scale, cap = _instance(7)
    monkeypatch.setattr(lpmod, "solve_model", _FailFirst(1))
    with caplog.at_level("INFO", logger="computepool.solvers"):
        max_min_lp(coef, count, scale, cap, method="simplex")
    (rec,) = [r for r in caplog.records if r.name == "computepool.solvers"]
    assert "Unknown" in rec.getMessage() and "solved by HiGHS" in rec.getMessage()


def test_every_highs_way_failing_falls_back_to_clarabel(monkeypatch):
    coef, count, scale, cap = _instance(3)
    direct = max_min_lp(coef, count, scale, cap, method="simplex")
    fail = _FailFirst(10**6)  # every HiGHS solve
    monkeypatch.setattr(lpmod, "solve_model", fail)
    got = max_min_lp(coef, count, scale, cap, method="simplex")
    assert fail.failed == len(lpmod.FALLBACKS)  # the simplex, then the three other ways
    assert got.value == pytest.approx(direct.value, rel=1e-6)


def test_an_lp_no_way_solves_raises_naming_what_was_tried(monkeypatch):
    coef, count, scale, cap = _instance(4)
    monkeypatch.setattr(lpmod, "solve_model", _FailFirst(10**6))
    with pytest.raises(LPError) as err:
        lex_max_min_lp(coef, count, scale, cap)
    msg = str(err.value)
    assert msg.startswith("lexicographic max-min LP: Unknown")
    assert "simplex: Unknown" in msg  # the fallbacks were tried, and say so


def test_a_malformed_model_is_not_retried(monkeypatch):
    coef, count, scale, cap = _instance(5)
    fail = _FailFirst(10**6, "Model error")
    monkeypatch.setattr(lpmod, "solve_model", fail)
    with pytest.raises(LPError):
        max_min_lp(coef, count, scale, cap, method="simplex")
    assert fail.failed == 1


#: The lexicographic LP's inputs at the round where ``las-lex`` ended a Gavel Fig. 9 run
#: (``gavel:rate=2.6,jobs=25000,multi_gpu=true,seed=2``, 38 groups on 3 flavors): HiGHS
#: 1.16's IPX without crossover returns "Unknown" on its first LP (114 columns, 79 rows);
#: IPX with crossover, the simplex and Clarabel solve it (minimum 1.3210271590).
FIXTURE = Path(__file__).parent / "data" / "lex_ipx_unknown.npz"


def test_the_lp_that_ended_a_gavel_run_is_solved():
    d = np.load(FIXTURE)
    args = (d["coef"], d["count"], d["scale_factor"], d["capacity"])
    got = lex_max_min_lp(*args)
    assert got.value == pytest.approx(max_min_lp(*args, method="simplex").value, rel=1e-7)
    assert got.value == pytest.approx(1.3210271590, rel=1e-7)
    levels = (d["coef"] * got.share).sum(axis=1)
    assert levels.min() == pytest.approx(got.value, rel=1e-6)
    use = (d["count"] * d["scale_factor"])[:, None] * got.share
    assert (use.sum(axis=0) <= d["capacity"] * (1 + 1e-6)).all()
    assert (got.share.sum(axis=1) <= 1 + 1e-6).all()


def test_a_session_solve_without_optimum_is_retried_on_the_changed_lp(monkeypatch):
    # FTF's bisection: one max-min LP, only the t column's coefficients change between solves
    coef, count, scale, cap = _instance(6)
    need = np.linspace(0.5, 2.0, len(coef))
    rows = max_min_model(coef, count, scale, cap, need).obj_row0 + np.arange(len(coef))

    def solved(fail_at: int) -> list[float]:
        m = max_min_model(coef, count, scale, cap, need)
        s = lpmod.Session(m.lp)
        out = [s.first.objective]
        for k, factor in enumerate((0.5, 1.7, 1.1)):
            s.set_column(m.t_col, rows, -need * factor)
            if k == fail_at:
                monkeypatch.setattr(lpmod, "_solution", _FailOnce(lpmod._solution))
            got = s.run()
            monkeypatch.undo()
            assert got.optimal
            out.append(got.objective)
        return out

    direct = solved(-1)
    for k in range(3):
        assert solved(k) == pytest.approx(direct, rel=1e-7)


class _FailOnce:
    def __init__(self, real) -> None:
        self.real, self.done = real, False

    def __call__(self, h: object, num_col: int) -> Solution:
        if not self.done:
            self.done = True
            return Solution(np.zeros(num_col), float("nan"), False, "Unknown")
        return self.real(h, num_col)
