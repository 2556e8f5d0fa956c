"""Regions and the network: required regions, complete rows, RTT sanity."""

from __future__ import annotations

import itertools

import pytest

from computepool.catalog.catalog import Catalog
from computepool.catalog.regions import derived_rtt_ms, great_circle_km, load_regions

REQUIRED = {
    "cn-ulanqab": "CN",
    "cn-hangzhou": "CN",
    "ap-singapore": "SG",
    "eu-frankfurt": "EU",
    "us-central": "US",
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def test_required_regions(catalog: Catalog) -> None:
    for name, jur in REQUIRED.items():
        assert catalog.regions[name].jurisdiction == jur


def test_rows_complete(catalog: Catalog) -> None:
    for r in catalog.regions.values():
        assert 0 < r.electricity_usd_per_kwh < 1, r.name
        assert 1.0 <= r.pue <= 2.0, r.name
        assert 0 < r.carbon_g_per_kwh < 1500, r.name
        assert r.latitude != 0 and r.longitude != 0, r.name
        assert r.egress_usd_per_gb > 0, r.name
        assert len(r.source) > 20, r.name


def test_local_currency_prices_converted(catalog: Catalog) -> None:
    # 0.38 yuan/kWh at 7 CNY/USD; 16.77 ct/kWh at 1.1133 USD/EUR.
    assert catalog.regions["cn-ulanqab"].electricity_usd_per_kwh == pytest.approx(0.38 / 7, 1e-3)
    assert catalog.regions["eu-frankfurt"].electricity_usd_per_kwh == pytest.approx(0.1867, 1e-3)


def test_rtt_symmetric_positive_and_triangle_ish(catalog: Catalog) -> None:
    names = sorted(catalog.regions)
    links = catalog.links(names)
    assert len(links) == len(names) * (len(names) + 1) // 2

    def rtt(a: str, b: str) -> float:
        return links[(a, b) if a <= b else (b, a)].rtt_ms

    for a, b in itertools.product(names, repeat=2):
        assert rtt(a, b) == rtt(b, a) > 0
        if a != b:
            assert rtt(a, b) > rtt(a, a)
    for a, b, c in itertools.permutations(names, 3):
        assert rtt(a, c) <= rtt(a, b) + rtt(b, c) + 1.0, (a, b, c)


def test_rtt_orders_of_magnitude(catalog: Catalog) -> None:
    links = catalog.links(catalog.regions)
    # Domain-facts §3.4 planner defaults: east China - Ulanqab 20-35 ms, CN - SG 50-90, CN - FRA 150-250
    # (derived values may sit a little under the defaults, never under the physics floors).
    assert 15.5 <= links[("cn-hangzhou", "cn-ulanqab")].rtt_ms <= 35
    assert 45 <= links[("ap-singapore", "cn-shanghai")].rtt_ms <= 90
    assert 104 <= links[("cn-shanghai", "eu-frankfurt")].rtt_ms <= 250
    assert links[("cn-hangzhou", "cn-ulanqab")].derived


def test_measured_link_overrides_formula(catalog: Catalog) -> None:
    link = catalog.links(["cn-beijing", "cn-hohhot"])[("cn-beijing", "cn-hohhot")]
    assert link.rtt_ms == 5.0 and not link.derived
    assert "S73" in link.source


def test_derivation_formula() -> None:
    regions = load_regions()
    d = great_circle_km(regions["cn-shanghai"], regions["eu-frankfurt"])
    assert 8600 < d < 9000  # domain-facts §3.4: Shanghai - Frankfurt 8,820 km
    model = Catalog.load().network.rtt_model
    assert derived_rtt_ms(d, model) == pytest.approx(2 * d / 200 * 1.5 + 2)


def test_bandwidth_assumptions(catalog: Catalog) -> None:
    links = catalog.links(["cn-hangzhou", "cn-ulanqab", "eu-frankfurt"])
    assert links[("cn-hangzhou", "cn-ulanqab")].bandwidth_gbps == 100
    assert links[("cn-hangzhou", "eu-frankfurt")].bandwidth_gbps == 10
    assert links[("cn-hangzhou", "cn-hangzhou")].bandwidth_gbps == 400
