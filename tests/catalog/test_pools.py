"""Every shipped pool loads with the right totals."""

from __future__ import annotations

from collections import Counter

import pytest

from computepool.catalog.catalog import Catalog
from computepool.catalog.pools import list_pools, load_pool, validate_pool_file
from computepool.model.pool import Pool


def test_list_pools() -> None:
    assert {"gavel-36x3", "openb", "automotive-demo"} <= set(list_pools())


@pytest.mark.parametrize("name", list_pools())
def test_every_shipped_pool_loads(name: str) -> None:
    pool = load_pool(name)
    assert pool.name == name
    assert pool.total_accelerators > 0
    assert len({n.name for n in pool.nodes}) == len(pool.nodes)
    for r in pool.regions:
        assert pool.rtt(r, r) > 0
    for a in pool.regions:
        for b in pool.regions:
            assert pool.rtt(a, b) == pool.rtt(b, a)


def test_gavel_36x3() -> None:
    pool = load_pool("gavel-36x3")
    assert pool.total_accelerators == 108
    assert pool.summary() == {"us-central/K80": 36, "us-central/P100": 36, "us-central/V100": 36}
    assert len(pool.flavors) == 3
    assert {n.count for n in pool.nodes} == {4}
    assert pool.regions["us-central"].jurisdiction == "US"


def test_openb() -> None:
    pool = load_pool("openb")
    assert len(pool.nodes) == 1213
    assert pool.total_accelerators == 6212
    per_model = Counter()
    for n in pool.nodes:
        per_model[n.accelerator] += n.count
    assert per_model == {
        "G2": 4392,
        "T4": 842,
        "G3": 312,
        "P100": 265,
        "V100M32": 204,
        "V100M16": 195,
        "A10": 2,
    }
    first = pool.nodes[0]
    assert (first.name, first.cpu_milli, first.memory_mib, first.count, first.accelerator) == (
        "openb-node-0000",
        64000,
        262144,
        2,
        "P100",
    )
    assert all(n.cpu_milli > 0 and n.memory_mib > 0 for n in pool.nodes)


def test_automotive_demo() -> None:
    pool = load_pool("automotive-demo")
    assert set(pool.regions) == {"cn-ulanqab", "cn-hangzhou", "ap-singapore", "eu-frankfurt"}
    assert 300 <= pool.total_accelerators <= 2000
    assert {n.count for n in pool.nodes} == {8}
    kinds = {n.accelerator for n in pool.nodes}
    assert {"H800", "H20", "A800", "Ascend910B", "Ascend910C", "MLU370", "K100"} <= kinds
    cm384 = [n for n in pool.nodes if n.accelerator == "Ascend910C"]
    assert sum(n.count for n in cm384) == 384 and len({n.island for n in cm384}) == 1
    assert all(n.island for n in pool.nodes)
    _check_export_realism(pool)


def _check_export_realism(pool: Pool) -> None:
    for n in pool.nodes:
        status = pool.accelerators[n.accelerator].export_status
        in_cn = pool.regions[n.region].jurisdiction == "CN"
        if n.accelerator in ("H100", "B200"):
            assert not in_cn, n.name
        if in_cn:
            assert status in ("banned", "china_special", "domestic"), n.name
        if status == "banned" and in_cn:
            assert n.accelerator in ("H800", "A800"), f"{n.name}: only pre-ban stock in CN"


def test_catalog_pool_and_validate(tmp_path) -> None:
    assert Catalog.load().pool("gavel-36x3").total_accelerators == 108
    from computepool.catalog.files import shipped

    path = tmp_path / "g.yaml"
    path.write_text(shipped("pools", "gavel-36x3.yaml").read_text())
    assert validate_pool_file(path).total_accelerators == 108


def test_inline_overrides(tmp_path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        """
name: mine
regions:
  - cn-ulanqab
  - {name: my-dc, jurisdiction: CN, electricity_usd_per_kwh: "0.5 CNY", pue: 1.1,
     carbon_g_per_kwh: 500, latitude: 30.0, longitude: 110.0, source: "my own meter"}
accelerators:
  - {name: H100-derated, like: H100, tdp_w: 500, source: "power-capped H100, our measurement"}
node_groups:
  - {prefix: a, region: my-dc, accelerator: H100-derated, per_node: 8, nodes: 3,
     island: [r0, r1], cpu_milli: 1000, memory_mib: 1024}
  - {prefix: b, region: cn-ulanqab, accelerator: H800, per_node: 8, nodes: 5, island: "rack-{i}", islands_of: 2}
"""
    )
    pool = load_pool(path)
    assert pool.regions["my-dc"].electricity_usd_per_kwh == pytest.approx(0.5 / 7, 1e-3)
    assert pool.accelerators["H100-derated"].tdp_w == 500
    assert pool.accelerators["H100-derated"].bf16_tflops == 989
    assert [n.island for n in pool.nodes] == [
        "r0",
        "r0",
        "r1",
        "rack-0",
        "rack-0",
        "rack-1",
        "rack-1",
        "rack-2",
    ]
    assert pool.rtt("my-dc", "cn-ulanqab") > 2.0
    assert pool.total_accelerators == 64


def test_csv_with_region_and_island_columns_and_map(tmp_path) -> None:
    (tmp_path / "n.csv").write_text(
        "sn,cpu_milli,memory_mib,gpu,model,region,island\n"
        "x0,96000,393216,8,GPU-A,cn-hangzhou,r0\n"
        "x1,96000,393216,8,GPU-A,cn-ulanqab,r1\n"
    )
    (tmp_path / "p.yaml").write_text(
        "name: p\nnodes_csv: {path: n.csv, accelerator_map: {GPU-A: H20}}\n"
        "node_groups:\n  - {prefix: g, region: cn-hangzhou, accelerator: H20, per_node: 8,"
        " nodes: 3, island: [a, b]}\n"
    )
    pool = load_pool(tmp_path / "p.yaml")
    assert [(n.name, n.region, n.accelerator, n.island) for n in pool.nodes[3:]] == [
        ("x0", "cn-hangzhou", "H20", "r0"),
        ("x1", "cn-ulanqab", "H20", "r1"),
    ]
    assert [n.island for n in pool.nodes[:3]] == ["a", "a", "b"]
    assert set(pool.regions) == {"cn-hangzhou", "cn-ulanqab"}
    assert pool.bandwidth_gbps[("cn-hangzhou", "cn-ulanqab")] == 100
