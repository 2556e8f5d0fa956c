"""The shipped accelerator catalog: required chips, complete rows, sources, derived factors."""

from __future__ import annotations

import dataclasses

import pytest

from computepool.catalog.accelerators import load_accelerator_catalog, load_accelerators
from computepool.model.accelerator import STACKS, AcceleratorType

REQUIRED = [
    "H100",
    "H800",
    "H20",
    "A100",
    "A800",
    "L20",
    "B200",
    "V100",
    "P100",
    "K80",
    "T4",
    "A10",
    "Ascend910B",
    "Ascend910C",
    "MLU370",
    "K100",
    "V100M16",
    "V100M32",
    "G1",
    "G2",
    "G3",
]


@pytest.fixture(scope="module")
def accels() -> dict[str, AcceleratorType]:
    return load_accelerators()


def test_required_types_present(accels: dict[str, AcceleratorType]) -> None:
    missing = [n for n in REQUIRED if n not in accels]
    assert not missing, f"missing accelerator rows: {missing}"


@pytest.mark.parametrize("name", REQUIRED)
def test_row_is_complete_and_sourced(accels: dict[str, AcceleratorType], name: str) -> None:
    a = accels[name]
    assert a.name == name
    assert a.vendor and a.stack in STACKS
    for f in ("bf16_tflops", "memory_gib", "memory_bw_gbs", "tdp_w", "h100_equiv"):
        assert getattr(a, f) > 0, f
    assert a.interconnect_gbs >= 0
    assert 0 < a.stack_efficiency <= 1
    assert a.price_per_hour is None or a.price_per_hour > 0
    assert len(a.source) > 20, "every row needs a real source"


def test_h100_equivalence_is_dense_bf16_over_989(accels: dict[str, AcceleratorType]) -> None:
    assert accels["H100"].h100_equiv == 1.0
    for a in accels.values():
        assert a.h100_equiv == pytest.approx(a.bf16_tflops / 989, abs=1e-4), a.name
    assert accels["B200"].h100_equiv == pytest.approx(2.275, abs=1e-3)
    assert accels["Ascend910C"].h100_equiv == pytest.approx(0.79, abs=0.01)


def test_gavel_prices_are_kept(accels: dict[str, AcceleratorType]) -> None:
    # The cost policy reproduces Gavel, which hard-codes these GCP prices.
    assert accels["V100"].price_per_hour == 0.74
    assert accels["P100"].price_per_hour == 0.43
    assert accels["K80"].price_per_hour == 0.135


def test_stacks_and_efficiency(accels: dict[str, AcceleratorType]) -> None:
    assert {accels[n].stack for n in ("H100", "V100", "T4")} == {"cuda"}
    assert accels["Ascend910B"].stack == accels["Ascend910C"].stack == "cann"
    assert accels["MLU370"].stack == "neuware"
    assert accels["K100"].stack == "dtk"
    # CUDA is the reference (1.0) so a `generic` step is one H100-second; others are lower.
    assert accels["H100"].stack_efficiency == 1.0
    for n in ("Ascend910B", "MLU370", "K100"):
        assert accels[n].stack_efficiency < 1.0, n


def test_chips_without_bf16_say_so(accels: dict[str, AcceleratorType]) -> None:
    for n in ("V100", "P100", "K80", "T4"):
        assert "no BF16" in accels[n].source or "no fast FP16" in accels[n].source, n


def test_like_rows_inherit_and_override(accels: dict[str, AcceleratorType]) -> None:
    v16, v32, v = accels["V100M16"], accels["V100M32"], accels["V100"]
    assert (v16.memory_gib, v32.memory_gib) == (16, 32)
    assert v16.bf16_tflops == v32.bf16_tflops == v.bf16_tflops
    for g in ("G1", "G2", "G3"):
        assert "UNKNOWN SPEC" in accels[g].source and "ASSUMPTION" in accels[g].source
        assert accels[g].vendor == "undisclosed"


def test_export_status_realism(accels: dict[str, AcceleratorType]) -> None:
    assert accels["H800"].export_status == "banned"
    assert accels["H20"].export_status == "china_special"
    assert accels["Ascend910C"].export_status == "domestic"


def test_prices_in_other_currencies_are_converted() -> None:
    cat = load_accelerator_catalog()
    # Ascend 910B: "120000 CNY" at 7.0 CNY/USD.
    assert cat.types["Ascend910B"].purchase_usd == pytest.approx(120000 / 7.0, rel=1e-4)
    assert cat.stack_efficiency["cuda"] == 1.0


def test_types_are_plain_dataclasses(accels: dict[str, AcceleratorType]) -> None:
    assert dataclasses.is_dataclass(accels["H100"])


def test_every_shipped_price_states_its_basis_and_dies_agree():
    from computepool.catalog.accelerators import load_accelerators

    accs = load_accelerators()
    for a in accs.values():
        if a.price_per_hour is not None:
            assert a.price_basis in ("cloud_list", "derived"), a.name
        if a.purchase_usd is not None:
            assert a.purchase_basis is not None, a.name
    # same die, same hourly price (H800 = H100 die; A800 = A100 die)
    assert accs["H800"].hourly_price == accs["H100"].hourly_price
    assert accs["A800"].hourly_price == accs["A100"].hourly_price
    assert accs["Ascend910C"].tdp_scope == "system"


def test_every_fabric_row_names_a_catalog_accelerator():
    from computepool.catalog.accelerators import load_accelerators
    from computepool.catalog.fabrics import load_fabrics

    accs = load_accelerators()
    fabrics = load_fabrics()
    assert set(fabrics) <= set(accs)
    assert fabrics["H100"].scale_out_cards >= 100_000
    assert all(f.source for f in fabrics.values())
