"""The capacity MILP on small cases whose optimum is worked out by hand (see each docstring)."""

from __future__ import annotations

import pytest

from tests.plan.helpers import HOURS, cards_of, chip, site, solve

ENERGY = 1.0 * HOURS * 0.1  # one 1 kW card at PUE 1 and 0.1 USD/kWh for a year = 876 USD


def test_one_chip_one_site_cost_is_capex_plus_three_years_of_energy():
    """1000 H100e of a 1.0-H100e chip: 1000 cards x $10k, plus 3 years x 1000 x $876."""
    p = solve()
    assert p.feasible
    assert cards_of(p, "X", 0) == 1000
    assert p.npv_usd() == pytest.approx(1000 * 10000 + 3 * 1000 * ENERGY, rel=1e-6)
    assert p.stats.status == "optimal"


def test_whole_nodes_round_up():
    """1001 H100e with 8 cards per node: 126 nodes (1008 cards), not 125.125."""
    p = solve(targets=[{"year": 2026, "h100e": 1001}], chips=[chip(per_node=8)])
    assert int(p.nodes.sum()) == 126
    assert cards_of(p, "X") == 1008


def test_discounting_buys_just_in_time():
    """A 2028-only target at 10%: buy in 2028, cost (10000 + 876) x 1000 / 1.1^2."""
    p = solve(targets=[{"year": 2028, "h100e": 1000}], discount_rate=0.1)
    assert p.nodes[:, :, :2].sum() == 0
    assert p.npv_usd() == pytest.approx(1000 * (10000 + ENERGY) / 1.21, rel=1e-6)


def test_chip_blocked_in_jurisdiction_forces_the_dearer_chip():
    cheap = chip("A", price_usd=5000, availability={"CN": False})
    dear = chip("B", price_usd=10000)
    p = solve(chips=[cheap, dear])
    assert (cards_of(p, "A"), cards_of(p, "B")) == (0, 1000)
    p_open = solve(chips=[chip("A", price_usd=5000), dear])
    assert (cards_of(p_open, "A"), cards_of(p_open, "B")) == (1000, 0)


def test_chip_cut_off_from_a_year_is_bought_before_it():
    """A ($5k) is purchasable in CN until 2026 only; B costs $10k. Buying all 1000 A in 2026
    costs 5000 + 876 x (1 + 1/1.1 + 1/1.21) = 7,424 per card, less than B in 2028
    ((10000 + 876) / 1.21 = 8,988), so the 2028 target is met with A bought in 2026."""
    a = chip("A", price_usd=5000, availability={"CN": {"until_year": 2026}})
    p = solve(
        chips=[a, chip("B")],
        targets=[{"year": 2026, "h100e": 500}, {"year": 2028, "h100e": 1000}],
        discount_rate=0.1,
    )
    c = [x.name for x in p.scenario.chips].index("A")
    assert p.nodes[c, :, 0].sum() == 1000
    assert cards_of(p, "B") == 0


def test_vendor_cap_forces_a_mix():
    """Cap 60%: of 1000 H100e at most 600 from the cheap vendor, 400 from the dear one."""
    a = chip("A", vendor="v1", price_usd=5000)
    b = chip("B", vendor="v2", price_usd=10000)
    p = solve(chips=[a, b], vendor_cap=0.6)
    assert (cards_of(p, "A"), cards_of(p, "B")) == (600, 400)
    assert p.npv_usd() == pytest.approx(600 * 5000 + 400 * 10000 + 3 * 1000 * ENERGY, rel=1e-6)
    assert any(b.kind == "vendor" for b in p.binding)


def test_supply_limit_spills_to_the_next_chip():
    a = chip("A", price_usd=5000, supply=600)
    p = solve(chips=[a, chip("B")])
    assert (cards_of(p, "A"), cards_of(p, "B")) == (600, 400)


def _lead_time_case(lead: int, **kw):
    """Site a holds 500 cards (0.5 MW); greenfield b must host the rest of 1000 by 2028."""
    return solve(
        sites=[
            site("a", power_mw=0.5),
            site("b", built=False, build_cost_usd=1e6, lead_time_years=lead),
        ],
        targets=[{"year": 2026, "h100e": 400}, {"year": 2028, "h100e": 1000}],
        discount_rate=0.1,
        **kw,
    )


def test_lead_time_forces_an_earlier_build():
    assert _lead_time_case(1).site_start["b"] == 2027  # as late as the lead time allows
    assert _lead_time_case(2).site_start["b"] == 2026  # two years: start in the first year


def test_power_cap_counts_pue():
    """1.2 MW at PUE 1.2 holds exactly 1000 cards of 1 kW."""
    ok = solve(sites=[site(power_mw=1.2, pue=1.2)])
    assert ok.feasible and ok.power_mw()[0, 0] == pytest.approx(1.2)
    short = solve(sites=[site(power_mw=1.2, pue=1.2)], targets=[{"year": 2026, "h100e": 1001}])
    assert not short.feasible


def test_card_cap():
    p = solve(sites=[site("a", card_cap=300), site("b", electricity_usd_per_kwh=0.2)])
    assert p.cards[0, 0, 0] == 300 and p.cards[0, 1, 0] == 700


def test_kinds_do_not_share_cards():
    p = solve(targets=[{"year": 2026, "h100e": 100}, {"year": 2026, "kind": "serve", "h100e": 100}])
    assert cards_of(p, "X", 0) == 200


def test_efficiency_and_eflops_units():
    """1 EFLOPS of a 1000-TFLOPS chip at 50% efficiency needs 2000 cards; peak needs 1000."""
    c = chip(bf16_tflops=1000, stack_efficiency=0.5)
    assert cards_of(solve(chips=[c], targets=[{"year": 2026, "eflops": 1.0}]), "X") == 2000
    peak = solve(chips=[c], targets=[{"year": 2026, "eflops": 1.0, "effective": False}])
    assert cards_of(peak, "X") == 1000


def test_where_restricts_sites():
    sites = [site("cn"), site("sg", jurisdiction="SG", electricity_usd_per_kwh=0.3)]
    p = solve(sites=sites, targets=[{"year": 2026, "h100e": 100, "where": ["SG"]}])
    assert p.cards[0, 1, 0] == 100 and p.cards[0, 0, 0] == 0


def test_facility_cost_and_tail_years():
    """Facility $1M per IT MW adds $1000 per 1 kW card; 2 tail years add 2 x 876 per card."""
    p = solve(defaults={"facility_usd_per_it_mw": 1e6, "tail_years": 2})
    assert p.npv_usd() == pytest.approx(1000 * (10000 + 1000) + 5 * 1000 * ENERGY, rel=1e-6)


def test_existing_cards_count_and_cost_no_capex():
    p = solve(sites=[site(existing=[{"chip": "X", "cards": 1000}])])
    assert p.nodes.sum() == 0
    assert p.npv_usd() == pytest.approx(3 * 1000 * ENERGY, rel=1e-6)


def test_budget_caps_capital_spending():
    p = solve(budget={"total_usd": 5e6})
    assert not p.feasible
    assert cards_of(p, "X") == 500
