"""Small scenario documents whose optimum is easy to work out by hand."""

from __future__ import annotations

import copy
from typing import Any

from computepool.plan.result import Plan, solve_plan
from computepool.plan.scenario import Scenario, parse_scenario

HOURS = 8760.0


def site(name: str = "a", **kw: Any) -> dict[str, Any]:
    base = {
        "name": name,
        "jurisdiction": "CN",
        "power_mw": 100.0,
        "electricity_usd_per_kwh": 0.1,
        "pue": 1.0,
        "carbon_g_per_kwh": 500.0,
        "built": True,
    }
    base.update(kw)
    return base


def chip(name: str = "X", **kw: Any) -> dict[str, Any]:
    base = {
        "name": name,
        "vendor": "v1",
        "bf16_tflops": 989.0,
        "h100_equiv": 1.0,
        "stack_efficiency": 1.0,
        "tdp_w": 1000.0,
        "price_usd": 10000.0,
        "per_node": 1,
    }
    base.update(kw)
    return base


def scenario_doc(
    targets: list[dict[str, Any]] | None = None,
    sites: list[dict[str, Any]] | None = None,
    chips: list[dict[str, Any]] | None = None,
    **kw: Any,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "t",
        "start_year": 2026,
        "horizon_years": 3,
        "targets": targets or [{"year": 2026, "h100e": 1000}],
        "sites": sites or [site()],
        "chips": chips or [chip()],
    }
    doc.update(kw)
    return copy.deepcopy(doc)


def scenario(**kw: Any) -> Scenario:
    return parse_scenario(scenario_doc(**kw), "test.yaml")


def solve(**kw: Any) -> Plan:
    return solve_plan(scenario(**kw))


def cards_of(p: Plan, chip_name: str, year_index: int = -1) -> float:
    c = [x.name for x in p.scenario.chips].index(chip_name)
    return float(p.cards[c, :, year_index].sum())
