"""Infeasible scenarios are explained: which target or cap, and by how much."""

from __future__ import annotations

import pytest

from tests.plan.helpers import chip, site, solve


def test_power_cap_shortfall_names_the_target_and_amount():
    """1 MW holds 1000 cards of 1 kW; a 1500 H100e target is 500 short, power binding."""
    p = solve(sites=[site(power_mw=1.0)], targets=[{"year": 2027, "h100e": 1500}])
    assert not p.feasible
    (v,) = p.explanation.violations
    assert v.kind == "target" and v.label == "2027 train"
    assert v.amount == pytest.approx(500, rel=1e-5)
    assert v.relative == pytest.approx(1 / 3)
    assert "short by 500 H100e" in v.sentence()
    assert any(b.kind == "power" and b.label == "a 2027" for b in p.explanation.binding)
    # the closest plan is still returned: it delivers what fits
    assert p.achieved()[0] == pytest.approx(1000)


def test_only_the_unmet_target_is_reported():
    p = solve(
        sites=[site(power_mw=1.0)],
        targets=[{"year": 2026, "h100e": 800}, {"year": 2028, "h100e": 1200, "name": "big"}],
    )
    names = [v.label for v in p.explanation.violations]
    assert names == ["big"]


def test_lead_time_infeasibility_mentions_the_site():
    """Greenfield site with a 2-year lead time cannot serve a 2027 target."""
    p = solve(
        sites=[site("new", built=False, lead_time_years=2)],
        targets=[{"year": 2027, "h100e": 100}],
    )
    (v,) = p.explanation.violations
    assert v.label == "2027 train" and v.amount == pytest.approx(100)
    assert any("new cannot host cards before 2028" in n for n in p.explanation.notes)


def test_blocked_chips_are_named():
    p = solve(chips=[chip(availability={"CN": False})])
    assert any("not purchasable in CN" in n and "X" in n for n in p.explanation.notes)


def test_existing_fleet_over_vendor_cap_makes_the_cap_give_way():
    """All 1000 existing cards are vendor v1, cap 50%, and no other vendor can be bought."""
    p = solve(
        sites=[site(existing=[{"chip": "X", "cards": 1000}])],
        chips=[chip("X"), chip("Y", vendor="v2", availability={"CN": False})],
        vendor_cap=0.5,
        targets=[{"year": 2026, "h100e": 100}],
    )
    assert not p.feasible
    kinds = {v.kind for v in p.explanation.violations}
    assert kinds == {"vendor"}
    assert all("v1" in v.label for v in p.explanation.violations)


def test_budget_shortfall():
    p = solve(budget={"per_year_usd": {2026: 2e6}}, targets=[{"year": 2026, "h100e": 1000}])
    (v,) = p.explanation.violations
    assert v.amount == pytest.approx(800, rel=1e-5)  # $2M buys 200 cards of $10k
    assert any(b.kind == "budget" for b in p.explanation.binding)


def test_feasible_plan_lists_what_binds():
    p = solve(sites=[site(power_mw=1.0)], targets=[{"year": 2026, "h100e": 1000}])
    assert p.feasible and p.explanation is None
    assert [b.kind for b in p.binding] == ["power", "power", "power"]
