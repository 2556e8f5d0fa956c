"""``cpool catalog``."""

from __future__ import annotations

import typer

from computepool.cli.common import console
from computepool.cli.output import Col, Output, OutputOpt, build_table, print_json, print_table

ACCELERATOR_COLUMNS = [
    Col("NAME", lambda a: a.name, key=True),
    Col("VENDOR", lambda a: a.vendor, key=True),
    Col("STACK", lambda a: a.stack, key=True),
    Col("BF16 TFLOPS", lambda a: f"{a.bf16_tflops:g}", key=True, right=True),
    Col("MEM GIB", lambda a: f"{a.memory_gib:g}", key=True, right=True),
    Col("MEM GB/S", lambda a: f"{a.memory_bw_gbs:g}", key=True, right=True, wide=True),
    Col("TDP W", lambda a: f"{a.tdp_w:g}", key=True, right=True),
    Col("H100-EQ", lambda a: f"{a.h100_equiv:.3f}", key=True, right=True),
    Col(
        "USD/H",
        lambda a: f"{a.hourly_price:.2f}" + ("" if a.price_per_hour is not None else "*"),
        key=True,
        right=True,
    ),
    Col("EXPORT (CN)", lambda a: a.export_status or "-", key=True, wide=True),
]
REGION_COLUMNS = [
    Col("NAME", lambda r: r.name, key=True),
    Col("JURISDICTION", lambda r: r.jurisdiction, key=True),
    Col("USD/KWH", lambda r: f"{r.electricity_usd_per_kwh:.3f}", key=True, right=True),
    Col("PUE", lambda r: f"{r.pue:.2f}", key=True, right=True),
    Col("G CO2/KWH", lambda r: f"{r.carbon_g_per_kwh:.0f}", key=True, right=True),
    Col("EGRESS USD/GB", lambda r: f"{r.egress_usd_per_gb:g}", key=True, right=True, wide=True),
]
POOL_COLUMNS = [
    Col("NAME", lambda p: p["name"], key=True),
    Col("NODES", lambda p: f"{p['nodes']:,}", key=True, right=True),
    Col("ACCELERATORS", lambda p: f"{p['accelerators']:,}", key=True, right=True),
    Col("FLAVORS", lambda p: str(p["flavors"]), key=True, right=True),
]
PRICE_NOTE = (
    "* no public rental price: derived from the purchase price (3 years at 70 %) or, "
    "failing that, from H100-equivalence (see docs/pools.md)."
)


def _accelerator_doc(a) -> dict:
    return {
        "name": a.name, "vendor": a.vendor, "stack": a.stack, "bf16_tflops": a.bf16_tflops,
        "memory_gib": a.memory_gib, "memory_bw_gbs": a.memory_bw_gbs, "tdp_w": a.tdp_w,
        "h100_equiv": a.h100_equiv, "usd_per_hour": a.hourly_price,
        "usd_per_hour_derived": a.price_per_hour is None, "export_status": a.export_status,
    }  # fmt: skip


def _region_doc(r) -> dict:
    return {
        "name": r.name, "jurisdiction": r.jurisdiction,
        "electricity_usd_per_kwh": r.electricity_usd_per_kwh, "pue": r.pue,
        "carbon_g_per_kwh": r.carbon_g_per_kwh, "egress_usd_per_gb": r.egress_usd_per_gb,
    }  # fmt: skip


def _pools() -> list[dict]:
    from computepool.catalog.pools import list_pools, load_pool

    out = []
    for name in list_pools():
        p = load_pool(name)
        out.append(
            {"name": name, "nodes": len(p.nodes), "accelerators": p.total_accelerators,
             "flavors": len(p.flavors)}
        )  # fmt: skip
    return out


def register(app: typer.Typer) -> None:
    @app.command()
    def catalog(output: OutputOpt = Output.table) -> None:
        """List accelerator types, regions and shipped pools."""
        from computepool.catalog.accelerators import load_accelerators
        from computepool.catalog.regions import load_regions

        accels = list(load_accelerators().values())
        regions = list(load_regions().values())
        pools = _pools()
        if output == Output.json:
            print_json(
                {
                    "accelerators": [_accelerator_doc(a) for a in accels],
                    "regions": [_region_doc(r) for r in regions],
                    "pools": pools,
                }
            )
            return
        wide, width = output == Output.wide, console.width
        print_table(
            build_table(ACCELERATOR_COLUMNS, accels, wide, width, "Accelerator types"), wide
        )
        console.print(PRICE_NOTE, highlight=False)
        for cols, rows, title in ((REGION_COLUMNS, regions, "Regions"),
                                  (POOL_COLUMNS, pools, "Shipped pools")):  # fmt: skip
            console.print()
            print_table(build_table(cols, rows, wide, width, title), wide)
