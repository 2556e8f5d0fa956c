"""Buyable plans: minimum orders, fixed cost per chip family and site, fabrics, determinism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from computepool.plan.result import solve_plan
from computepool.plan.scenario import parse_scenario
from tests.plan.helpers import cards_of, chip, scenario_doc, site, solve


def _lines(p):
    return [r for r in p.to_dict()["schedule"] if r["nodes"] > 0]


def test_min_order_rounds_a_small_buy_up_to_one_lot():
    p = solve(targets=[{"year": 2026, "h100e": 10}], chips=[chip(min_order=100)])
    assert p.feasible
    assert cards_of(p, "X", 0) == 100
    assert all(r["cards"] == 0 or r["cards"] >= 100 for r in _lines(p))
    assert all(r["min_order"] == 100 for r in p.to_dict()["schedule"])


def test_min_order_is_rounded_up_to_whole_nodes():
    p = solve(targets=[{"year": 2026, "h100e": 10}], chips=[chip(per_node=8, min_order=20)])
    assert cards_of(p, "X", 0) == 24


def test_no_second_small_buy_below_the_lot():
    # +30 cards in 2027: with a lot of 100 the plan buys 100 at once (or all 130 in 2026)
    targets = [{"year": 2026, "h100e": 100}, {"year": 2027, "h100e": 130}]
    p = solve(targets=targets, chips=[chip(min_order=100)])
    assert all(r["cards"] >= 100 for r in _lines(p))
    assert cards_of(p, "X", 1) >= 130


def test_fixed_cost_per_family_and_site_concentrates_the_buy():
    chips = [chip("X", supply=600), chip("Y", price_usd=10100.0, vendor="v2")]
    free = solve(targets=[{"year": 2026, "h100e": 1000}], chips=chips)
    assert cards_of(free, "X", 0) == 600 and cards_of(free, "Y", 0) == 400
    fixed = [dict(c, fixed_cost_usd=1e7) for c in chips]
    p = solve(targets=[{"year": 2026, "h100e": 1000}], chips=fixed)
    assert cards_of(p, "X", 0) == 0 and cards_of(p, "Y", 0) == 1000
    assert p.fixed_by_year()[0] == 1e7
    assert p.to_dict()["cost_by_year_usd"]["chip_site_fixed"][0] == 1e7


def test_cards_count_toward_training_only_in_a_fabric_that_holds_the_largest_job():
    # X is cheaper but its largest built cluster (100 cards) cannot hold a 500-H100e job
    chips = [chip("X", price_usd=5000.0, scale_out_cards=100), chip("Y", scale_out_cards=10_000)]
    targets = [{"year": 2026, "h100e": 1000, "largest_job_h100e": 500}]
    p = solve(targets=targets, chips=chips)
    assert p.feasible
    assert cards_of(p, "X", 0) == 0 and cards_of(p, "Y", 0) == 1000
    line = _lines(p)[0]
    assert line["fabric"]["largest_jobs"][0]["holds"] is True
    assert line["fabric"]["counts_toward"] == ["train"]


def test_a_site_too_small_for_the_job_does_not_count_for_training():
    # cheap site a holds only 400 cards: a 500-card job must sit at site b
    sites = [site("a", card_cap=400, electricity_usd_per_kwh=0.01), site("b")]
    chips = [chip(scale_out_cards=10_000)]
    targets = [{"year": 2026, "h100e": 900, "largest_job_h100e": 500}]
    p = solve(targets=targets, sites=sites, chips=chips)
    assert p.feasible
    assert float(p.alloc[0, 0, 0, 0]) == 0.0
    assert float(p.cards[0, 1, 0]) >= 900
    # without the largest job, the cheap site is filled first
    free = solve(targets=[{"year": 2026, "h100e": 900}], sites=sites, chips=chips)
    assert float(free.cards[0, 0, 0]) == 400


def test_cards_outside_a_training_fabric_still_serve():
    chips = [chip("X", price_usd=5000.0, scale_out_cards=100), chip("Y", scale_out_cards=10_000)]
    targets = [
        {"year": 2026, "h100e": 1000, "largest_job_h100e": 500},
        {"year": 2026, "kind": "serve", "h100e": 300},
    ]
    p = solve(targets=targets, chips=chips)
    assert cards_of(p, "X", 0) == 300 and cards_of(p, "Y", 0) == 1000


def _vendor_doc() -> dict:
    chips = [
        chip(f"C{i}", vendor=f"v{i % 3}", price_usd=9000.0 + 137 * i, supply=400, min_order=50)
        for i in range(6)
    ]
    return scenario_doc(
        targets=[{"year": 2026, "h100e": 900}, {"year": 2028, "h100e": 1700}],
        sites=[site("a"), site("b", electricity_usd_per_kwh=0.12)],
        chips=chips,
        vendor_cap=0.5,
        discount_rate=0.08,
    )


def test_same_input_same_json_bytes(tmp_path: Path):
    sc = parse_scenario(_vendor_doc(), "t.yaml")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    solve_plan(sc).write_json(a)
    solve_plan(parse_scenario(_vendor_doc(), "t.yaml")).write_json(b)
    assert a.read_bytes() == b.read_bytes()
    assert "seconds" not in json.loads(a.read_text())["solve"]


def test_same_bytes_across_processes_with_other_hash_seeds(tmp_path: Path):
    """Set iteration order changes with PYTHONHASHSEED; the plan must not."""
    src = tmp_path / "s.yaml"
    src.write_text(yaml.safe_dump(_vendor_doc()))
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / f"{seed}.json"
        env = dict(os.environ, PYTHONHASHSEED=seed)
        cmd = [sys.executable, "-m", "computepool.cli.app", "plan", str(src), "--json", str(out)]
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_resale_credits_the_npv_and_the_objective():
    plain = solve(targets=[{"year": 2026, "h100e": 100}])
    resold = solve(
        targets=[{"year": 2026, "h100e": 100}],
        chips=[chip(resale_fraction=0.2)],
        discount_rate=0.1,
        defaults={"tail_years": 2},
    )
    # 100 cards x $10,000 x 0.2, sold after 3 + 2 years at 10 %
    credit = 100 * 10000.0 * 0.2 / 1.1**5
    assert resold.resale_pv_usd() == pytest.approx(credit)
    base = solve(
        targets=[{"year": 2026, "h100e": 100}], discount_rate=0.1, defaults={"tail_years": 2}
    )
    assert resold.npv_usd() == pytest.approx(base.npv_usd() - credit)
    assert plain.resale_pv_usd() == 0.0


def test_explanation_names_chips_whose_fabric_cannot_hold_the_job():
    chips = [chip("X", scale_out_cards=100)]
    p = solve(targets=[{"year": 2026, "h100e": 1000, "largest_job_h100e": 500}], chips=chips)
    assert not p.feasible
    text = "\n".join(p.explanation.lines())
    assert "X (needs 500 cards, largest built 100)" in text


def test_vendor_rows_do_not_follow_the_hash_seed():
    """Vendor-cap rows were built in a set's order, which changes with PYTHONHASHSEED: the same
    file gave different plans (NPV off by up to 0.1% at a 1% gap) from one process to the next."""
    code = (
        "from computepool.plan.scenario import load_scenario;"
        "print(list(load_scenario('examples/plans/tesla-parity-3y.yaml').vendor_caps))"
    )
    root = Path(__file__).resolve().parents[2]
    orders = {
        subprocess.run(
            [sys.executable, "-c", code],
            env=dict(os.environ, PYTHONHASHSEED=seed),
            cwd=root,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        for seed in ("1", "2", "3", "4")
    }
    assert len(orders) == 1


def test_fixed_cost_is_paid_in_the_year_the_family_arrives():
    p = solve(
        targets=[{"year": 2027, "h100e": 100}],
        chips=[chip(fixed_cost_usd=1e6)],
        discount_rate=0.1,
    )
    assert cards_of(p, "X", 0) == 0 and cards_of(p, "X", 1) == 100
    assert list(p.fixed_by_year()) == [0.0, 1e6, 0.0]
    nofix = solve(targets=[{"year": 2027, "h100e": 100}], discount_rate=0.1)
    assert p.npv_usd() == pytest.approx(nofix.npv_usd() + 1e6 / 1.1)
