"""Sweep specs and how they change a scenario."""

from __future__ import annotations

import pytest

from computepool.plan.sweep import SweepError, apply, parse_sweep, run_sweep
from tests.plan.helpers import chip, scenario


def test_parse_range_and_list():
    s = parse_sweep("supply:nvidia=1:0:5")
    assert s.param == "supply:nvidia" and s.values == pytest.approx((1, 0.75, 0.5, 0.25, 0))
    assert parse_sweep("discount_rate=0.05,0.1").values == (0.05, 0.1)


@pytest.mark.parametrize(
    "text,reason",
    [
        ("supply:nvidia", "expected PARAM="),
        ("colour=1:2:3", "unknown parameter 'colour'"),
        ("target=1:0:1", "STEPS >= 2"),
        ("target=a,b", "values must be"),
    ],
)
def test_bad_specs(text, reason):
    with pytest.raises(SweepError, match=reason):
        parse_sweep(text)


def test_supply_sweep_needs_limits_and_scales_them():
    sc = scenario(chips=[chip("A", supply=100), chip("B", vendor="v2")])
    out = apply(sc, parse_sweep("supply:v1=0.5,1"), 0.5)
    assert out.chips[0].supply == (50, 50, 50) and out.chips[1].supply == (None, None, None)
    with pytest.raises(SweepError, match="B have no supply limit"):
        apply(sc, parse_sweep("supply:B=0.5,1"), 0.5)
    with pytest.raises(SweepError, match="no chip option or vendor called 'nope'"):
        apply(sc, parse_sweep("price:nope=1,2"), 1)


def test_sweep_cost_rises_as_cheap_supply_falls():
    """Cheap A ($5k, supply 1000 x f) and dear B ($10k): cost = 1000 x (10k - 5k x f) + energy."""
    sc = scenario(chips=[chip("A", price_usd=5000, supply=1000), chip("B", vendor="v2")])
    pts = run_sweep(sc, parse_sweep("supply:A=1,0.5,0"))
    capex = [pt.plan.capex_by_year().sum() for pt in pts]
    assert capex == pytest.approx([5e6, 7.5e6, 10e6])
    assert all(pt.plan.feasible for pt in pts)


def test_target_sweep_can_turn_infeasible():
    sc = scenario(chips=[chip(supply=1000)])
    pts = run_sweep(sc, parse_sweep("target=1,2"))
    assert [pt.plan.feasible for pt in pts] == [True, False]
    assert pts[1].plan.explanation.violations[0].amount == pytest.approx(1000, rel=1e-5)
