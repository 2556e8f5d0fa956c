"""``cpool catalog``."""

from __future__ import annotations

import typer
from rich.table import Table

from computepool.cli.common import console


def _accelerator_table() -> Table:
    from computepool.catalog.accelerators import load_accelerators

    t = Table(title="Accelerator types")
    for col in (
        "name",
        "vendor",
        "stack",
        "BF16 TFLOPS",
        "mem GiB",
        "mem GB/s",
        "TDP W",
        "H100-eq",
        "USD/h",
    ):
        t.add_column(col, justify="left" if col in ("name", "vendor", "stack") else "right")
    for a in load_accelerators().values():
        t.add_row(
            a.name,
            a.vendor,
            a.stack,
            f"{a.bf16_tflops:g}",
            f"{a.memory_gib:g}",
            f"{a.memory_bw_gbs:g}",
            f"{a.tdp_w:g}",
            f"{a.h100_equiv:.3f}",
            f"{a.hourly_price:.2f}" + ("" if a.price_per_hour is not None else "*"),
        )
    return t


def _region_table() -> Table | None:
    try:
        from computepool.catalog.regions import load_regions
    except ImportError:
        return None
    t = Table(title="Regions")
    for col in ("name", "jurisdiction", "USD/kWh", "PUE", "g CO2/kWh"):
        t.add_column(col, justify="left" if col in ("name", "jurisdiction") else "right")
    for r in load_regions().values():
        t.add_row(
            r.name,
            r.jurisdiction,
            f"{r.electricity_usd_per_kwh:.3f}",
            f"{r.pue:.2f}",
            f"{r.carbon_g_per_kwh:.0f}",
        )
    return t


def _pool_table() -> Table | None:
    try:
        from computepool.catalog.pools import list_pools, load_pool
    except ImportError:
        return None
    t = Table(title="Shipped pools")
    for col in ("name", "nodes", "accelerators", "flavors"):
        t.add_column(col, justify="left" if col == "name" else "right")
    for name in list_pools():
        p = load_pool(name)
        t.add_row(name, f"{len(p.nodes):,}", f"{p.total_accelerators:,}", str(len(p.flavors)))
    return t


def register(app: typer.Typer) -> None:
    @app.command()
    def catalog() -> None:
        """List accelerator types, regions and shipped pools."""
        console.print(_accelerator_table())
        console.print(
            "* no public rental price: derived from the purchase price (3 years at 70 %) or, "
            "failing that, from H100-equivalence (see docs/pools.md)."
        )
        for t in (_region_table(), _pool_table()):
            if t is not None:
                console.print(t)
