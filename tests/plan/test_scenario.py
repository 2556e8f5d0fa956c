"""Scenario files: catalog defaults, and every bad input named by file, field and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from computepool.plan.scenario import ScenarioFileError, load_scenario, parse_scenario, per_year
from tests.plan.helpers import chip, scenario_doc, site

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plans"


def bad(doc, field: str, reason: str) -> None:
    with pytest.raises(ScenarioFileError) as exc:
        parse_scenario(doc, "scen.yaml")
    text = str(exc.value)
    assert f"scen.yaml: {field}" in text, text
    assert reason in text, text


def test_catalog_fills_chip_and_region_facts():
    doc = scenario_doc(
        sites=[{"name": "u", "region": "cn-ulanqab", "power_mw": 10, "built": True}],
        chips=[{"name": "H20"}, {"name": "H100"}],
    )
    sc = parse_scenario(doc)
    h20, h100 = sc.chips
    assert h20.vendor == "nvidia" and h20.capex_usd[0] == pytest.approx(13500)
    assert h20.h100_equiv == pytest.approx(148 / 989, rel=1e-3)
    assert sc.sites[0].jurisdiction == "CN" and sc.sites[0].pue == pytest.approx(1.2)
    # H100 is banned for CN in the catalog: unavailable there by default
    assert h100.available["CN"] == (False, False, False)
    assert h20.available["CN"] == (True, True, True)


def test_overrides_and_per_year_values():
    doc = scenario_doc(
        chips=[
            chip(
                price_usd={2027: 8000},
                supply={2026: 10, 2028: None},
                availability={"CN": {"from_year": 2027}},
            )
        ],
        defaults={"system_overhead": 2.0},
    )
    (c,) = parse_scenario(doc).chips
    assert c.capex_usd == (16000, 16000, 16000)  # the earliest given value also before it
    assert c.supply == (10, 10, None)
    assert c.available["CN"] == (False, True, True)


def test_money_in_other_currencies():
    (c,) = parse_scenario(scenario_doc(chips=[chip(price_usd="70000 CNY")])).chips
    assert c.capex_usd[0] == pytest.approx(10000, rel=1e-3)


def test_per_year_carries_forward():
    problems: list = []
    assert per_year({2027: 5}, (2026, 2027, 2028), "f", problems) == [5, 5, 5]
    assert per_year({2026: 1, 2028: 3}, (2026, 2027, 2028), "f", problems) == [1, 1, 3]
    assert per_year({2030: 1}, (2026,), "f", problems) == [None] and problems


def test_unknown_region():
    bad(
        scenario_doc(sites=[{"name": "s", "region": "mars-1", "power_mw": 1}]),
        "sites[0].region",
        "unknown region 'mars-1'",
    )


def test_site_without_region_needs_facts():
    bad(
        scenario_doc(sites=[{"name": "s", "power_mw": 1}]),
        "sites[0].jurisdiction",
        "required when the site names no catalog region",
    )


def test_unknown_accelerator():
    bad(
        scenario_doc(chips=[{"name": "c", "accelerator": "Z9000"}]),
        "chips[0].accelerator",
        "unknown accelerator 'Z9000'",
    )


def test_chip_outside_the_catalog_needs_its_specs():
    bad(
        scenario_doc(chips=[{"name": "Z", "price_usd": 1}]),
        "chips[0].vendor",
        "'Z' is not in the catalog",
    )


def test_chip_without_a_price():
    bad(
        scenario_doc(chips=[{"name": "MLU370"}]),
        "chips[0].price_usd",
        "no purchase_usd for 'MLU370'",
    )


def test_target_year_outside_horizon():
    bad(
        scenario_doc(targets=[{"year": 2040, "h100e": 1}]),
        "targets[0].year",
        "outside the horizon 2026-2028",
    )


def test_target_needs_exactly_one_unit():
    bad(
        scenario_doc(targets=[{"year": 2026, "h100e": 1, "eflops": 1}]),
        "targets[0]",
        "exactly one of h100e or eflops",
    )


def test_target_where_unknown():
    bad(
        scenario_doc(targets=[{"year": 2026, "h100e": 1, "where": ["EU"]}]),
        "targets[0].where[0]",
        "'EU' is no site or jurisdiction",
    )


def test_availability_for_unknown_jurisdiction():
    bad(
        scenario_doc(chips=[chip(availability={"US": False})]),
        "chips[0].availability.US",
        "not the jurisdiction of any site",
    )


def test_per_year_key_outside_horizon():
    bad(scenario_doc(chips=[chip(supply={2035: 1})]), "chips[0].supply", "outside the horizon")


def test_duplicate_names():
    bad(scenario_doc(chips=[chip("A"), chip("A")]), "chips[1].name", "duplicate name 'A'")


def test_existing_cards_need_a_built_site():
    doc = scenario_doc(sites=[site(built=False, existing=[{"chip": "X", "cards": 5}])])
    bad(doc, "sites[0].existing", "must be built: true")


def test_existing_unknown_chip():
    doc = scenario_doc(sites=[site(existing=[{"chip": "Q", "cards": 5}])])
    bad(doc, "sites[0].existing[0].chip", "'Q' is not one of the chips")


def test_vendor_cap_unknown_vendor_and_range():
    bad(
        scenario_doc(vendor_cap={"share": 0.5, "per_vendor": {"acme": 0.1}}),
        "vendor_cap.per_vendor.acme",
        "no chip option has vendor 'acme'",
    )
    bad(scenario_doc(vendor_cap=1.5), "vendor_cap.share", "less than or equal to 1")


def test_unknown_field_and_wrong_type():
    bad(scenario_doc(colour="blue"), "colour", "unknown field")
    bad(scenario_doc(sites=[site(power_mw="lots")]), "sites[0].power_mw", "valid number")


def test_bad_money():
    bad(
        scenario_doc(chips=[chip(price_usd="ten dollars")]),
        "chips[0].price_usd",
        "not a number or 'AMOUNT CUR'",
    )


def test_file_errors(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioFileError, match="not valid YAML"):
        load_scenario(p)
    with pytest.raises(ScenarioFileError, match="file not found"):
        load_scenario(tmp_path / "missing.yaml")
    p.write_text("- a list\n")
    with pytest.raises(ScenarioFileError, match="top level must be a mapping"):
        load_scenario(p)


def test_shipped_example_loads():
    sc = load_scenario(EXAMPLES / "tesla-parity-3y.yaml")
    assert sc.years == (2026, 2027, 2028)
    assert max(t.value for t in sc.targets) == 67000
    h20 = next(c for c in sc.chips if c.name == "H20")
    assert h20.available["CN"] == (True, False, False)


def test_example_power_model_matches_public_100k_h100_sites():
    """The Tesla example's IT overhead, on 100k H100 at PUE 1.2, lands within 5% of the >=150 MW
    reported for xAI's 100k-H100 Colossus (domain-facts §2.2); the old 1.5 gave 126 MW."""
    from pathlib import Path

    import yaml

    from computepool.plan.milp import power_mw_per_card

    root = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((root / "examples/plans/tesla-parity-3y.yaml").read_text())
    doc["chips"] = [{"name": "H100"}]
    doc["sites"] = [dict(doc["sites"][0], pue=1.2, existing=[])]
    doc["vendor_cap"] = None
    sc = parse_scenario(doc, "tesla.yaml")
    mw = 100_000 * power_mw_per_card(sc.chips[0], sc.sites[0])
    assert mw == pytest.approx(150.0, rel=0.05)


def test_system_level_tdp_gets_no_it_overhead():
    doc = scenario_doc(chips=[{"name": "Ascend910C", "price_usd": 30000}])
    doc["defaults"] = {"it_overhead": 1.8}
    sc = parse_scenario(doc, "t.yaml")
    assert sc.chips[0].it_power_w == 1460.0  # CloudMatrix 384: 559 kW / 384, per chip
    doc["chips"] = [{"name": "H100"}]
    assert parse_scenario(doc, "t.yaml").chips[0].it_power_w == pytest.approx(700 * 1.8)
